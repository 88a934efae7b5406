using System.Collections.Immutable;
using Fabric.Node.Jobs;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Node.Chaos;

/// <summary>
/// What a fault interrupted and how soon the work went on, worked out from the journal (every event carries the time
/// it happened on its node; the nodes share this machine's clock): the first completion of work redone because of it —
/// a task that ran on a victim placed again, a result a victim held recomputed, or a job whose run was on a victim
/// running again — or, with nothing to redo, the next completion of any job. Pure.
/// </summary>
public static class ChaosRecovery
{
    public const string JobNode = "job node";
    public const string TaskNode = "task node";
    public const string HeldResults = "held results";
    public const string Idle = "idle";

    public sealed record Outcome(string Role, int InterruptedTasks, double? RecoverySeconds, string? RecoveredBy);

    /// <param name="victims">The nodes hit, by name.</param>
    /// <param name="victimAddresses">Their cluster addresses (a job's run names the node it ran on by address).</param>
    /// <param name="atMs">When the fault struck (Unix ms).</param>
    public static Outcome Of(IReadOnlyCollection<string> victims, IReadOnlyCollection<string> victimAddresses, long atMs,
        IReadOnlyDictionary<string, ImmutableArray<JournalEntry>> histories)
    {
        bool jobRunHit = false, tasksHit = false, resultsHit = false;
        var interrupted = 0;
        (long At, string By)? first = null;
        (long At, string By)? anyAfter = null;
        foreach (var (jobId, history) in histories)
        {
            foreach (var e in history.Where(e => AtMs(e.Event) > atMs).Select(e => e.Event))
                if (Completion(e) is { } done && (anyAfter is null || done.At < anyAfter.Value.At)) anyAfter = (done.At, $"{jobId}/{done.Task}");

            var before = history.Where(e => AtMs(e.Event) <= atMs).Select(e => e.Event).ToList();
            if (before.Count == 0 || before.Any(e => e is JobEvents.Completed or JobEvents.Failed)) continue;

            // The job was running: which of its tasks did the fault touch?
            var lastRun = before.OfType<RunStarted>().LastOrDefault();
            var jobHit = lastRun is not null && victimAddresses.Contains(lastRun.Node);
            var placedOn = new Dictionary<string, string>();
            var doneOn = new Dictionary<string, string>();
            foreach (var e in before)
            {
                switch (e)
                {
                    case TaskPlaced p: placedOn[p.Task] = p.Device.Node; doneOn.Remove(p.Task); break;
                    case JobEvents.TaskCompleted c: doneOn[c.Task] = c.Device.Node; break;
                    case TaskRecomputed r: doneOn[r.Task] = r.Device.Node; break;
                }
            }
            var inFlight = placedOn.Where(kv => !doneOn.ContainsKey(kv.Key) && victims.Contains(kv.Value)).Select(kv => kv.Key).ToList();
            var held = doneOn.Where(kv => victims.Contains(kv.Value)).Select(kv => kv.Key).ToList();
            var touched = inFlight.Concat(held).ToHashSet();
            interrupted += inFlight.Count;
            jobRunHit |= jobHit;
            tasksHit |= inFlight.Count > 0;
            resultsHit |= held.Count > 0;

            // Work redone: a completion of an attempt placed after the fault — of a touched task, or of any task once a
            // new run of a hit job started. (A completion stamped just after the fault for an attempt placed before it
            // finished before the fault: it is no recovery.)
            var placedAfter = new HashSet<(string Task, int Attempt)>();
            var newRun = false;
            foreach (var e in history.Where(e => AtMs(e.Event) > atMs).Select(e => e.Event))
            {
                if (e is RunStarted) newRun = true;
                if (e is TaskPlaced placed) placedAfter.Add((placed.Task, placed.Attempt));
                if (Completion(e) is { } done && placedAfter.Contains((done.Task, done.Attempt)) && ((jobHit && newRun) || touched.Contains(done.Task))
                    && (first is null || done.At < first.Value.At))
                    first = (done.At, $"{jobId}/{done.Task}");
            }
        }
        var role = jobRunHit ? JobNode : tasksHit ? TaskNode : resultsHit ? HeldResults : Idle;
        // Nothing to redo (idle, or results already used): the next completion of any job shows the cluster kept going.
        var chosen = first ?? anyAfter;
        return new Outcome(role, interrupted, chosen is { } c2 ? (c2.At - atMs) / 1000.0 : null, chosen?.By);
    }

    private static (string Task, int Attempt, long At)? Completion(IJobEvent e) => e switch
    {
        JobEvents.TaskCompleted c => (c.Task, c.Attempt, c.AtMs),
        TaskRecomputed r => (r.Task, r.Attempt, r.AtMs),
        _ => null,
    };

    public static long AtMs(IJobEvent e) => e switch
    {
        Submitted s => s.AtMs,
        RunStarted r => r.AtMs,
        TaskPlaced p => p.AtMs,
        JobEvents.TaskCompleted c => c.AtMs,
        TaskRecomputed r => r.AtMs,
        TaskFailed f => f.AtMs,
        BuffersLost b => b.AtMs,
        JobEvents.Completed c => c.AtMs,
        JobEvents.Failed f => f.AtMs,
        _ => 0,
    };
}
