using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Fabric.Core.Gateway;

/// <summary>
/// A job's timeline as a Chrome trace-event document (the JSON object form), built from its <see cref="JobView"/> alone:
/// what <c>GET /jobs/{id}/timeline</c> answers and <c>fabric job ID --timeline FILE</c> writes. It opens in
/// https://ui.perfetto.dev and chrome://tracing.
/// <code>
/// {"traceEvents": [ ... ],
///  "displayTimeUnit": "ms",
///  "otherData": {"jobId", "name", "status", "error" (when any), "runs", "runNodes", "tasks", "completedTasks",
///                "attempts", "recomputations", "nodeLosses", "submittedAt", "finishedAt" (when finished), "now"}}
/// </code>
/// Times are integer microseconds (<c>ts</c>, <c>dur</c>) since the job's submission (<c>otherData.submittedAt</c>,
/// ISO-8601 UTC like every time in otherData); the view's times have millisecond precision. They are the clocks of the
/// nodes that ran the job, so a clock that differs from the submitting node's can put an attempt before 0.
/// <list type="bullet">
/// <item>Each node that ran an attempt is a process: <c>pid</c> 1, 2, … in the order of node names (digit runs compared
/// as numbers: n2 before n10), named by metadata events <c>{"ph":"M","name":"process_name","pid":1,"tid":0,
/// "args":{"name":"node n2"}}</c> and <c>process_sort_index</c> (<c>args.sort_index</c> = the pid).</item>
/// <item>Each device is a thread of its node's process: <c>tid</c> 1, 2, … over the whole job (unique, not per process),
/// in the order of the nodes and then of the devices' names, named by <c>thread_name</c> (<c>args.name</c> = the
/// device id, e.g. <c>n2/dev0</c>) and ordered by <c>thread_sort_index</c>.</item>
/// <item>Each attempt is a complete event: <c>{"ph":"X","name":task,"cat":outcome in lowercase ("completed", "failed",
/// "nodelost", "runlost", "handedoff", "abandoned", "running"),"pid","tid","ts","dur","args":{"task","attempt","stage"
/// (0 first, as in the view),"outcome","error" (when any),"recomputation"}}</c>. <c>recomputation</c> is true for a
/// Completed attempt after the task's first Completed one (ordered by their ends): it computed again a result that was
/// lost with its node. An attempt still running lasts until the job's end if it has ended, else until <c>now</c>.</item>
/// <item>Global instant events (<c>"ph":"i","s":"g","pid":0,"tid":0</c>): <c>submitted</c> (cat <c>job</c>, at 0);
/// <c>node N lost</c> (cat <c>nodelost</c>, args <c>{node, attempts}</c>) at the earliest end of the attempts that ended
/// NodeLost on that node, once per loss — such ends less than <see cref="LossWindow"/> apart on one node are one loss;
/// <c>job's node ADDRESS lost</c> (cat <c>runlost</c>, args <c>{run, node, attempts}</c>) where attempts ended RunLost
/// (the job's node was lost and its run started again elsewhere), the address the lost run's entry in
/// <c>runNodes</c> — when the runs cannot be told apart from the attempts (a run lost while nothing ran leaves no
/// trace) it is <c>job's node lost</c> without run and node; and <c>finished</c> (cat <c>job</c>, args
/// <c>{status, error}</c>) at the job's end.</item>
/// </list>
/// The order is fixed: the metadata (processes, then threads, in pid/tid order), then the other events by <c>ts</c>,
/// those at the same time as submitted, attempts (tasks in the view's order, then in the order of each task's log: the
/// order they started — an attempt's number counts within one run of the job and starts again at 1 with the next), node losses,
/// the job's node losses, finished. So one view and one <c>now</c> give the same bytes.
/// </summary>
public static class JobTimeline
{
    /// <summary>NodeLost ends on one node closer than this to the previous one are one loss of that node.</summary>
    public static readonly TimeSpan LossWindow = TimeSpan.FromSeconds(2);

    /// <summary>The timeline of <paramref name="view"/>; attempts still running are drawn until <paramref name="now"/>.</summary>
    public static JsonObject Of(JobView view, DateTimeOffset now)
    {
        var tasks = view.TaskDetails.IsDefault ? [] : view.TaskDetails;
        var runNodes = view.RunNodes.IsDefault ? [] : view.RunNodes;
        // In each task's log order, the order they started: numbers count within one run and start again with the next.
        var attempts = tasks.SelectMany(t => (t.AttemptLog.IsDefault ? [] : t.AttemptLog).Select((a, i) => (Task: t, Attempt: a, Index: i))).ToList();
        var origin = view.SubmittedAt ?? (attempts.Count > 0 ? attempts.Min(x => x.Attempt.StartedAt) : now);
        long Micros(DateTimeOffset at) => (at - origin).Ticks / TimeSpan.TicksPerMicrosecond;
        DateTimeOffset End(JobView.AttemptView a) => a.EndedAt ?? view.FinishedAt ?? now;

        var nodes = attempts.Select(x => x.Attempt.Node).Distinct().Order(NaturalOrder.Instance).ToList();
        var pids = nodes.Select((n, i) => (n, i + 1)).ToDictionary(p => p.n, p => p.Item2, StringComparer.Ordinal);
        var devices = attempts.Select(x => (x.Attempt.Node, x.Attempt.Device)).Distinct()
            .OrderBy(d => pids[d.Node]).ThenBy(d => d.Device, NaturalOrder.Instance).ToList();
        var tids = devices.Select((d, i) => (d, i + 1)).ToDictionary(p => p.d, p => p.Item2);

        var events = new JsonArray();
        foreach (var node in nodes)
        {
            events.Add(Metadata("process_name", pids[node], 0, "name", $"node {node}"));
            events.Add(Metadata("process_sort_index", pids[node], 0, "sort_index", pids[node]));
        }
        foreach (var device in devices)
        {
            events.Add(Metadata("thread_name", pids[device.Node], tids[device], "name", device.Device));
            events.Add(Metadata("thread_sort_index", pids[device.Node], tids[device], "sort_index", tids[device]));
        }

        // Built in the tie order; a stable sort by time keeps it among events at the same time.
        var timed = new List<(long Ts, JsonObject Event)>();
        if (view.SubmittedAt is { } submitted) timed.Add((Micros(submitted), Instant("submitted", "job", Micros(submitted), [])));

        // The task's Completed attempts after its first, by their place in its log (numbers repeat across runs).
        var recomputations = attempts.Where(x => x.Attempt.Outcome == "Completed").GroupBy(x => x.Task.Name, StringComparer.Ordinal)
            .SelectMany(g => g.OrderBy(x => x.Attempt.EndedAt ?? DateTimeOffset.MaxValue).ThenBy(x => x.Index).Skip(1))
            .Select(x => (x.Task.Name, x.Index)).ToHashSet();
        foreach (var (task, a, index) in attempts)
        {
            var args = new JsonObject { ["task"] = task.Name, ["attempt"] = a.Number, ["stage"] = task.Stage, ["outcome"] = a.Outcome };
            if (a.Error is not null) args["error"] = a.Error;
            args["recomputation"] = recomputations.Contains((task.Name, index));
            var ts = Micros(a.StartedAt);
            timed.Add((ts, new JsonObject
            {
                ["ph"] = "X",
                ["name"] = task.Name,
                ["cat"] = a.Outcome.ToLowerInvariant(),
                ["pid"] = pids[a.Node],
                ["tid"] = tids[(a.Node, a.Device)],
                ["ts"] = ts,
                ["dur"] = Math.Max(0, Micros(End(a)) - ts),
                ["args"] = args,
            }));
        }

        var losses = 0;
        foreach (var node in nodes)
            foreach (var loss in Losses(attempts.Where(x => x.Attempt.Node == node && x.Attempt.Outcome == "NodeLost").Select(x => End(x.Attempt))))
            {
                losses++;
                timed.Add((Micros(loss.At), Instant($"node {node} lost", "nodelost", Micros(loss.At), new() { ["node"] = node, ["attempts"] = loss.Attempts })));
            }

        // Every attempt a run had running ends at one time, when the run ends: lost (at the next run's start) or handed off.
        var runEnds = attempts.Where(x => x.Attempt.Outcome is "RunLost" or "HandedOff").GroupBy(x => End(x.Attempt))
            .OrderBy(g => g.Key).Select(g => (At: g.Key, Lost: g.First().Attempt.Outcome == "RunLost", Attempts: g.Count())).ToList();
        // The i-th end is the end of run i + 1 only when every run but maybe the last ended with attempts running.
        var runsKnown = runNodes.Length == view.Runs && (runEnds.Count == view.Runs - 1 || runEnds.Count == view.Runs);
        for (var i = 0; i < runEnds.Count; i++)
        {
            if (!runEnds[i].Lost) continue;
            losses++;
            var args = new JsonObject();
            if (runsKnown) { args["run"] = i + 1; args["node"] = runNodes[i]; }
            args["attempts"] = runEnds[i].Attempts;
            var ts = Micros(runEnds[i].At);
            timed.Add((ts, Instant(runsKnown ? $"job's node {runNodes[i]} lost" : "job's node lost", "runlost", ts, args)));
        }

        if (view.FinishedAt is { } finished)
        {
            var args = new JsonObject { ["status"] = view.Status };
            if (view.Error is not null) args["error"] = view.Error;
            timed.Add((Micros(finished), Instant("finished", "job", Micros(finished), args)));
        }
        foreach (var (_, e) in timed.OrderBy(t => t.Ts)) events.Add(e);

        var other = new JsonObject { ["jobId"] = view.JobId, ["name"] = view.Name, ["status"] = view.Status };
        if (view.Error is not null) other["error"] = view.Error;
        other["runs"] = view.Runs;
        other["runNodes"] = new JsonArray([.. runNodes.Select(n => (JsonNode?)JsonValue.Create(n))]);
        other["tasks"] = view.Tasks;
        other["completedTasks"] = view.CompletedTasks;
        other["attempts"] = attempts.Count;
        other["recomputations"] = tasks.Sum(t => t.Recomputations);
        other["nodeLosses"] = losses;
        other["submittedAt"] = Time(origin);
        if (view.FinishedAt is { } end) other["finishedAt"] = Time(end);
        other["now"] = Time(now);
        return new JsonObject { ["traceEvents"] = events, ["displayTimeUnit"] = "ms", ["otherData"] = other };
    }

    /// <summary>What a timeline document holds: its events, the job's tasks, the attempts drawn, the node losses marked.</summary>
    public sealed record Counts(int Events, int Tasks, int Attempts, int NodeLosses);

    /// <summary>The counts of a document <see cref="Of"/> made (read back, e.g. from <c>GET /jobs/{id}/timeline</c>).</summary>
    public static Counts Count(JsonObject document)
    {
        var events = document["traceEvents"]?.AsArray() ?? [];
        string? Field(JsonNode? e, string name) => e?[name]?.GetValue<string>();
        return new Counts(events.Count, document["otherData"]?["tasks"]?.GetValue<int>() ?? 0,
            events.Count(e => Field(e, "ph") == "X"),
            events.Count(e => Field(e, "ph") == "i" && Field(e, "cat") is "nodelost" or "runlost"));
    }

    /// <summary>Ends of attempts lost with one node, in distinct losses: each at its earliest end, with its attempts.</summary>
    private static IEnumerable<(DateTimeOffset At, int Attempts)> Losses(IEnumerable<DateTimeOffset> ends)
    {
        DateTimeOffset? first = null, previous = null;
        var count = 0;
        foreach (var end in ends.Order())
        {
            if (previous is { } p && end - p >= LossWindow)
            {
                yield return (first!.Value, count);
                (first, count) = (null, 0);
            }
            first ??= end;
            previous = end;
            count++;
        }
        if (first is { } f) yield return (f, count);
    }

    private static JsonObject Metadata(string name, int pid, int tid, string key, JsonNode value) => new()
    {
        ["ph"] = "M",
        ["name"] = name,
        ["pid"] = pid,
        ["tid"] = tid,
        ["args"] = new JsonObject { [key] = value },
    };

    private static JsonObject Instant(string name, string category, long ts, JsonObject args) => new()
    {
        ["ph"] = "i",
        ["s"] = "g",
        ["name"] = name,
        ["cat"] = category,
        ["pid"] = 0,
        ["tid"] = 0,
        ["ts"] = ts,
        ["args"] = args,
    };

    private static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>Names in the order a reader expects: runs of digits compared as numbers (n2 before n10), the rest ordinally.</summary>
    private sealed class NaturalOrder : IComparer<string>
    {
        public static readonly NaturalOrder Instance = new();

        public int Compare(string? x, string? y)
        {
            if (x is null || y is null) return x is null ? (y is null ? 0 : -1) : 1;
            int i = 0, j = 0;
            while (i < x.Length && j < y.Length)
            {
                if (char.IsAsciiDigit(x[i]) && char.IsAsciiDigit(y[j]))
                {
                    int si = i, sj = j;
                    while (i < x.Length && char.IsAsciiDigit(x[i])) i++;
                    while (j < y.Length && char.IsAsciiDigit(y[j])) j++;
                    var a = x[si..i].TrimStart('0');
                    var b = y[sj..j].TrimStart('0');
                    var byNumber = a.Length != b.Length ? a.Length.CompareTo(b.Length) : string.CompareOrdinal(a, b);
                    if (byNumber != 0) return byNumber;
                }
                else
                {
                    if (x[i] != y[j]) return x[i].CompareTo(y[j]);
                    i++;
                    j++;
                }
            }
            var byLength = (x.Length - i).CompareTo(y.Length - j);
            return byLength != 0 ? byLength : string.CompareOrdinal(x, y);
        }
    }
}
