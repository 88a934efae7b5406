using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Node.Jobs;

/// <summary>
/// A job's history as it is persisted: the events of journal <c>job-{id}</c>, read back through Akka.Persistence.Query
/// (Akka.Persistence.Sql's read journal, so on SQLite and PostgreSQL alike), each as one line. It reads the database, not
/// the entity: asking does not wake an ended job, and a snapshot does not shorten the history (events are never deleted).
/// </summary>
public sealed class JobHistory(ActorSystem system)
{
    /// <summary>
    /// The most events one read answers (<c>GET /jobs/{id}/events</c> without <c>max</c> gets up to this many); a longer
    /// history is read on from the last sequence number + 1.
    /// </summary>
    public const int MaxEvents = 10_000;

    /// <summary>
    /// A read that has not ended in this time fails with a <see cref="TimeoutException"/> (within the CLI's 10 s per
    /// request, so that it hears why).
    /// </summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(8);

    private readonly object _gate = new();
    private Task<SqlReadJournal>? _journal;
    private IMaterializer? _materializer;

    /// <summary>
    /// Events <paramref name="from"/> (1: the first) on, at most <paramref name="max"/>, in order; null when the job has no
    /// history (never submitted). Throws <see cref="TimeoutException"/> past <see cref="ReadTimeout"/>, and the database's
    /// own exception when it cannot be read.
    /// </summary>
    public async Task<ImmutableArray<JobHistoryEntry>?> ReadAsync(string jobId, long from, int max, CancellationToken cancel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(from, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(max, MaxEvents);
        if (!JobsService.IsValidId(jobId) || jobId == JobsService.ReservedId) return null; // job-index is the index's journal
        var persistenceId = $"job-{jobId}";
        var events = await ReadEventsAsync(persistenceId, from, max, cancel);
        // Nothing from a later sequence number: the history may have ended before it; nothing from the first: there is none.
        if (events.Length == 0 && (from == 1 || (await ReadEventsAsync(persistenceId, 1, 1, cancel)).Length == 0)) return null;
        return events;
    }

    private async Task<ImmutableArray<JobHistoryEntry>> ReadEventsAsync(string persistenceId, long from, int max, CancellationToken cancel)
    {
        var (journal, materializer) = await JournalAsync();
        var to = from > long.MaxValue - max ? long.MaxValue : from + max - 1;
        var envelopes = await journal.CurrentEventsByPersistenceId(persistenceId, from, to)
            .Take(max)
            .CompletionTimeout(ReadTimeout)
            .RunWith(Sink.Seq<EventEnvelope>(), materializer)
            .WaitAsync(cancel);
        return [.. envelopes.Where(e => e.Event is IJobEvent).Select(e => Describe(e.SequenceNr, (IJobEvent)e.Event))];
    }

    /// <summary>
    /// The read journal, made once (its constructor waits up to 5 s for the write journal and starts an actor of a fixed
    /// name, so never twice, and not on the caller's thread); made again on the next read when that failed.
    /// </summary>
    private async Task<(SqlReadJournal, IMaterializer)> JournalAsync()
    {
        Task<SqlReadJournal> journal;
        lock (_gate)
        {
            if (_journal is null || _journal.IsFaulted || _journal.IsCanceled)
                _journal = Task.Run(() => PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier));
            journal = _journal;
            _materializer ??= system.Materializer(namePrefix: "job-history");
        }
        return (await journal, _materializer);
    }

    /// <summary>The line for event <paramref name="sequence"/> of a job: its kind and a sentence naming what it concerns.</summary>
    public static JobHistoryEntry Describe(long sequence, IJobEvent e) => e switch
    {
        Submitted s => new(sequence, s.AtMs, "submitted", Submission(s)),
        RunStarted r => new(sequence, r.AtMs, "run-started", $"a run of the job started on the node at {r.Node}"),
        RunStopped r => new(sequence, r.AtMs, "run-stopped", $"the run stopped ({r.Reason}); the next run goes on from here"),
        TaskPlaced p => new(sequence, p.AtMs, "placed", $"task {p.Task} placed on {p.Device} (attempt {p.Attempt})"),
        TaskCompleted c => new(sequence, c.AtMs, "completed", $"task {c.Task} completed on {c.Device} in {c.Seconds:0.000} s (attempt {c.Attempt})"),
        TaskRecomputed c => new(sequence, c.AtMs, "recomputed",
            $"task {c.Task} ran again on {c.Device} in {c.Seconds:0.000} s (attempt {c.Attempt}) to recompute outputs lost with a node"),
        TaskFailed f => new(sequence, f.AtMs, "failed", $"task {f.Task} failed on {f.Device} (attempt {f.Attempt}): {f.Error}; " +
                                                         (f.WillRetry ? "it will be placed again" : "it is not tried again")),
        BuffersLost l => new(sequence, l.AtMs, "lost", $"{Count(l.Buffers.Length, "buffer")} lost ({Names(l.Buffers)}): {l.Reason}"),
        JobEvents.Completed c => new(sequence, c.AtMs, "job-completed",
            $"the job completed with {Count(c.Outputs.Length, "output")}" + (c.Outputs.IsEmpty ? "" : $": {Names(c.Outputs.Select(o => $"{o.Name} ({o.Size:N0} bytes)"))}")),
        JobEvents.Failed f => new(sequence, f.AtMs, "job-failed", $"the job failed: {f.Error}"),
        Cancelled c => new(sequence, c.AtMs, "cancelled", "the job was cancelled"),
        _ => new(sequence, 0, "unknown", $"an event of a kind this node does not know ({e.GetType().Name})"),
    };

    private static string Submission(Submitted s)
    {
        var stages = JobPlan.Of(s.Spec).Stages.Length;
        return $"job {s.JobId} ({s.Spec.Name}) submitted: {Count(s.Spec.Tasks.Length, "task")} in {Count(stages, "stage")}, " +
               $"{Count(s.Spec.Buffers.Length, "buffer")}";
    }

    private static string Count(int n, string what) => n == 1 ? $"1 {what}" : $"{n:N0} {what}s";

    /// <summary>The first few names, and how many more.</summary>
    private static string Names(IEnumerable<string> names)
    {
        const int shown = 10;
        var all = names.ToList();
        return all.Count <= shown ? string.Join(", ", all) : $"{string.Join(", ", all.Take(shown))} and {all.Count - shown} more";
    }
}
