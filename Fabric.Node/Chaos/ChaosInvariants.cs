using System.Collections.Immutable;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using Fabric.Core.Protocol;
using Fabric.Node.Jobs;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Node.Chaos;

/// <summary>
/// The promises a chaos run checks, each a pure function of what was observed, returning the violations it finds.
/// </summary>
public static class ChaosInvariants
{
    public const string Completed = "every job completed";
    public const string ExactlyOnce = "exactly once";
    public const string CorrectResult = "result equals the host reference";
    public const string NoLeaks = "devices back at baseline";
    public const string NoHangingWaits = "no wait left hanging";
    public const string Journal = "journal consistent with what ran";
    public const string StateIsJournal = "job state equals the fold of its journal";

    public const string OneSideKept = "the resolver kept one side of each partition";

    public static readonly ImmutableArray<string> All = [Completed, ExactlyOnce, CorrectResult, NoLeaks, NoHangingWaits, Journal, StateIsJournal];

    /// <summary>What a run checks: <see cref="All"/>, and <see cref="OneSideKept"/> when it cuts links.</summary>
    public static ImmutableArray<string> For(bool partitions) => partitions ? All.Add(OneSideKept) : All;

    /// <summary>
    /// After a link fault, the split-brain resolver kept exactly one side and downed the other: <paramref name="kept"/>
    /// (the nodes whose process of before the fault is still a member after the heal) is the whole of one side, and
    /// none of the other. Both sides kept is a split brain (two clusters ran jobs); neither kept, a cluster lost. For a
    /// one-way cut, whose victim and peer cannot talk but each still reaches the rest, the rest is kept and at most one
    /// of the two.
    /// </summary>
    public static IEnumerable<Violation> KeptOneSide(ChaosFault fault, IReadOnlyCollection<string> nodes, IReadOnlyCollection<string> kept)
    {
        var subject = $"fault {fault.Number} ({fault.Kind.ToString().ToLowerInvariant()} {string.Join('+', fault.Victims)})";
        var keptText = kept.Count == 0 ? "none" : string.Join(", ", kept.Order(StringComparer.Ordinal));
        if (fault.Kind == FaultKind.OneWay)
        {
            var rest = nodes.Except(fault.Victims).Except(fault.Peers).ToList();
            if (rest.Except(kept).ToList() is { Count: > 0 } lost)
                yield return new Violation(OneSideKept, subject, $"{string.Join(", ", lost)}, which still reached everyone, did not stay (kept: {keptText})");
            if (kept.Contains(fault.Victims.Single()) && kept.Contains(fault.Peers.Single()))
                yield return new Violation(OneSideKept, subject, $"both {fault.Victims.Single()} and {fault.Peers.Single()} stayed members though they could not reach each other");
            yield break;
        }
        var (cut, others) = ChaosPartitions.Sides(fault, nodes);
        var keptCut = cut.Where(kept.Contains).ToList();
        var keptOthers = others.Where(kept.Contains).ToList();
        if (keptCut.Count > 0 && keptOthers.Count > 0)
            yield return new Violation(OneSideKept, subject, $"both sides stayed members ({string.Join(", ", keptCut)} | {string.Join(", ", keptOthers)}): a split brain");
        else if (kept.Count == 0)
            yield return new Violation(OneSideKept, subject, "no side stayed: every node was downed");
        else if (keptCut.Count != 0 ? keptCut.Count != cut.Length : keptOthers.Count != others.Length)
            yield return new Violation(OneSideKept, subject, $"only part of a side stayed (kept: {keptText})");
    }

    /// <summary>Every planned job ended Completed (not failed, not still running, not unknown to the cluster).</summary>
    public static IEnumerable<Violation> JobsCompleted(IEnumerable<ChaosJob> jobs, IReadOnlyDictionary<string, JobView> views)
    {
        foreach (var job in jobs)
        {
            if (!views.TryGetValue(job.Id, out var view))
                yield return new Violation(Completed, job.Id, "the cluster does not know the job (submitted, then lost?)");
            else if (view.Status == nameof(JobStatus.Failed))
                yield return new Violation(Completed, job.Id, $"failed: {view.Error}");
            else if (view.Status != nameof(JobStatus.Completed))
                yield return new Violation(Completed, job.Id, $"still {view.Status} at the end ({view.CompletedTasks}/{view.Tasks} tasks): it hangs");
        }
    }

    /// <summary>
    /// Each job is listed once in the job index, nothing else is (no duplicate submission), and its journal holds
    /// exactly one outcome, as its last event.
    /// </summary>
    public static IEnumerable<Violation> RanExactlyOnce(IEnumerable<ChaosJob> jobs, IReadOnlyList<string> indexed,
        IReadOnlyDictionary<string, ImmutableArray<JournalEntry>> histories)
    {
        var planned = jobs.Select(j => j.Id).ToHashSet();
        foreach (var group in indexed.GroupBy(id => id))
        {
            if (!planned.Contains(group.Key)) yield return new Violation(ExactlyOnce, group.Key, "a job nobody submitted is in the job index");
            else if (group.Count() > 1) yield return new Violation(ExactlyOnce, group.Key, $"listed {group.Count()} times in the job index");
        }
        foreach (var id in planned.Where(id => !indexed.Contains(id)))
            yield return new Violation(ExactlyOnce, id, "missing from the job index");
        foreach (var (id, history) in histories)
        {
            if (!planned.Contains(id))
            {
                yield return new Violation(ExactlyOnce, id, "the journal holds a job nobody submitted");
                continue;
            }
            var outcomes = history.Count(e => e.Event is JobEvents.Completed or JobEvents.Failed);
            if (outcomes != 1)
                yield return new Violation(ExactlyOnce, id, $"the journal holds {outcomes} outcomes (Completed/Failed) instead of one");
            else if (history[^1].Event is not (JobEvents.Completed or JobEvents.Failed))
                yield return new Violation(ExactlyOnce, id, $"events follow the job's outcome (last: {history[^1].Event.GetType().Name})");
        }
    }

    /// <summary>
    /// The job's journal tells a story that could have happened, and the one the cluster shows: sequence numbers 1..n
    /// without gaps, submitted first with this spec, every completion of a task the spec has and placed before on that
    /// device with that attempt, a first completion at most once per task and for every task of a completed job, as
    /// many runs and events as the job's view counts.
    /// </summary>
    public static IEnumerable<Violation> JournalConsistent(ChaosJob job, ImmutableArray<JournalEntry> history, JobView? view)
    {
        var problems = new List<string>();
        for (var i = 0; i < history.Length; i++)
            if (history[i].Sequence != i + 1)
            {
                problems.Add($"sequence numbers jump to {history[i].Sequence} at event {i + 1}");
                break;
            }
        if (history.IsDefaultOrEmpty || history[0].Event is not JobEvents.Submitted submitted)
            problems.Add("the first event is not Submitted");
        else if (JobJson.Write(submitted.Spec) != JobJson.Write(job.Spec))
            problems.Add("the submitted spec differs from the one sent");

        var tasks = job.Spec.Tasks.Select(t => t.Name).ToHashSet();
        var placed = new HashSet<(string, string, int)>();
        var completions = new Dictionary<string, int>();
        foreach (var e in history.Select(h => h.Event))
        {
            switch (e)
            {
                case TaskPlaced p:
                    placed.Add((p.Task, p.Device.ToString(), p.Attempt));
                    break;
                case JobEvents.TaskCompleted c:
                    completions[c.Task] = completions.GetValueOrDefault(c.Task) + 1;
                    if (!tasks.Contains(c.Task)) problems.Add($"task {c.Task} completed, but the spec has no such task");
                    else if (!placed.Contains((c.Task, c.Device.ToString(), c.Attempt)))
                        problems.Add($"task {c.Task} completed on {c.Device} (attempt {c.Attempt}) without being placed there");
                    break;
                case TaskRecomputed r when !completions.ContainsKey(r.Task):
                    problems.Add($"task {r.Task} was recomputed before it had completed");
                    break;
            }
        }
        foreach (var (task, count) in completions.Where(kv => kv.Value > 1))
            problems.Add($"task {task} has {count} first completions");
        if (history.Any(h => h.Event is JobEvents.Completed) && tasks.Except(completions.Keys).ToList() is { Count: > 0 } missing)
            problems.Add($"completed without tasks {string.Join(", ", missing.Take(5))} ever completing");
        var runs = history.Count(h => h.Event is RunStarted);
        if (runs == 0) problems.Add("no run ever started");
        if (view is not null)
        {
            if (view.Runs != runs) problems.Add($"the job shows {view.Runs} runs, the journal {runs}");
            if (view.Events != history.Length) problems.Add($"the job shows {view.Events} events, the journal {history.Length}");
        }
        return problems.Select(p => new Violation(Journal, job.Id, p));
    }

    /// <summary>
    /// The state a job's entity shows (recovered from its snapshot and later events, or built as it ran) is what
    /// applying every row of its journal, in order, from nothing gives: no event written is missing from it (a second
    /// writer's rows would be), none it counts is missing from the journal.
    /// </summary>
    public static IEnumerable<Violation> StateEqualsJournal(string jobId, ImmutableArray<JournalEntry> history, JobView shown)
    {
        var folded = JobViews.Of(history.Aggregate(JobState.Empty(jobId), (state, entry) => state.Apply(entry.Event)));
        var problems = new List<string>();
        void Same<T>(string what, T journal, T state)
        {
            if (!EqualityComparer<T>.Default.Equals(journal, state)) problems.Add($"{what}: the journal gives {journal}, the job shows {state}");
        }
        Same("status", folded.Status, shown.Status);
        Same("events", folded.Events, shown.Events);
        Same("runs", string.Join(" ", folded.RunNodes), string.Join(" ", shown.RunNodes));
        Same("completed tasks", folded.CompletedTasks, shown.CompletedTasks);
        var tasks = shown.TaskDetails.ToDictionary(t => t.Name);
        foreach (var task in folded.TaskDetails)
        {
            if (!tasks.TryGetValue(task.Name, out var other))
            {
                problems.Add($"task {task.Name} is in the journal's fold but not in the job");
                continue;
            }
            Same($"task {task.Name} status", task.Status, other.Status);
            Same($"task {task.Name} attempts", task.Attempts, other.Attempts);
            Same($"task {task.Name} placements", string.Join(" ", task.Placements), string.Join(" ", other.Placements));
            Same($"task {task.Name} completions", task.Completions, other.Completions);
            Same($"task {task.Name} recomputations", task.Recomputations, other.Recomputations);
        }
        return problems.Take(5).Select(p => new Violation(StateIsJournal, jobId, p));
    }

    /// <summary>Every device of a live node is where it was before any job: no memory, context, export, import, queued work or waiter left.</summary>
    public static IEnumerable<Violation> DevicesAtBaseline(IReadOnlyDictionary<string, DeviceInfo> baseline, IEnumerable<DeviceInfo> now)
    {
        foreach (var device in now)
        {
            var before = baseline.GetValueOrDefault(device.Id.ToString());
            var held = new List<string>();
            if (device.MemoryUsed != (before?.MemoryUsed ?? 0)) held.Add($"{device.MemoryUsed:N0} bytes of memory in use (baseline {before?.MemoryUsed ?? 0:N0})");
            if (device.Allocations != (before?.Allocations ?? 0)) held.Add($"{device.Allocations} allocations (baseline {before?.Allocations ?? 0})");
            if (device.OpenContexts != (before?.OpenContexts ?? 0)) held.Add($"{device.OpenContexts} open contexts");
            if (device.Exports != (before?.Exports ?? 0)) held.Add($"{device.Exports} dma-buf exports");
            if (device.Imports != (before?.Imports ?? 0)) held.Add($"{device.Imports} dma-buf imports");
            if (held.Count > 0) yield return new Violation(NoLeaks, device.Id.ToString(), string.Join(", ", held));
            if (device.Waiters > 0 || device.QueueDepth > 0)
                yield return new Violation(NoHangingWaits, device.Id.ToString(), $"{device.Waiters} fence waits and {device.QueueDepth} submissions still pending");
        }
    }
}
