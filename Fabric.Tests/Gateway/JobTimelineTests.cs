using System.Net;
using System.Text.Json.Nodes;
using Fabric.Core.Gateway;
using Fabric.Tests.Cluster;
using Fabric.Tests.Jobs;
using Xunit.Abstractions;

namespace Fabric.Tests.Gateway;

/// <summary>
/// <see cref="JobTimeline.Of"/> on hand-built views: processes and threads, complete events in microseconds since the
/// submission, outcomes, recomputations, node losses merged within <see cref="JobTimeline.LossWindow"/>, the job's own
/// node lost, attempts still running, and the same bytes for the same view.
/// </summary>
public sealed class JobTimelineTests
{
    private static readonly DateTimeOffset Submitted = new(2026, 3, 4, 5, 6, 7, 123, TimeSpan.Zero);
    private static readonly string[] RunAddresses = ["akka.tcp://fabric@127.0.0.1:4053", "akka.tcp://fabric@127.0.0.1:4054", "akka.tcp://fabric@127.0.0.1:4055"];

    [Fact]
    public void Nodes_are_processes_in_natural_order_and_devices_are_threads_numbered_over_the_whole_job()
    {
        var view = View(null, Task("a", 0, Attempt(1, "n10/dev1", 0, 100, "Completed")),
            Task("b", 0, Attempt(1, "n2/dev10", 0, 100, "Completed")),
            Task("c", 0, Attempt(1, "n2/dev2", 0, 100, "Completed")),
            Task("d", 1, Attempt(1, "n10/dev0", 100, 200, "Completed")),
            Task("e", 1, Attempt(1, "n2/dev2", 100, 200, "Completed")));

        var document = JobTimeline.Of(view, Submitted.AddSeconds(1));
        var events = Events(document);
        var processes = events.Where(e => Text(e, "name") == "process_name").ToList();
        var threads = events.Where(e => Text(e, "name") == "thread_name").ToList();

        Assert.Equal([(1, "node n2"), (2, "node n10")], processes.Select(e => (Int(e, "pid"), Text(e["args"], "name"))));
        Assert.All(processes, p => Assert.Equal(0, Int(p, "tid")));
        Assert.Equal([(1, 1, "n2/dev2"), (1, 2, "n2/dev10"), (2, 3, "n10/dev0"), (2, 4, "n10/dev1")],
            threads.Select(e => (Int(e, "pid"), Int(e, "tid"), Text(e["args"], "name"))));
        // Sort indexes: a process's is its pid, a thread's its tid.
        Assert.All(events.Where(e => Text(e, "name") == "process_sort_index"), e => Assert.Equal(Int(e, "pid"), Int(e["args"], "sort_index")));
        Assert.All(events.Where(e => Text(e, "name") == "thread_sort_index"), e => Assert.Equal(Int(e, "tid"), Int(e["args"], "sort_index")));
        Assert.Equal(2 * processes.Count + 2 * threads.Count, events.TakeWhile(e => Text(e, "ph") == "M").Count());
        Assert.DoesNotContain(events.SkipWhile(e => Text(e, "ph") == "M"), e => Text(e, "ph") == "M");
        // Each attempt sits in the row of its device.
        var rows = threads.ToDictionary(e => (Int(e, "pid"), Int(e, "tid")), e => Text(e["args"], "name"));
        var devices = view.TaskDetails.ToDictionary(t => t.Name, t => t.AttemptLog.Single().Device);
        Assert.All(events.Where(e => Text(e, "ph") == "X"), x => Assert.Equal(devices[Text(x, "name")!], rows[(Int(x, "pid"), Int(x, "tid"))]));
    }

    [Fact]
    public void Each_attempt_is_a_complete_event_in_microseconds_since_submission_with_its_outcome_as_category()
    {
        var view = View(Submitted.AddMilliseconds(9000),
            Task("done", 0, Attempt(1, "n1/dev0", 1500, 2750, "Completed")),
            Task("broke", 0, Attempt(1, "n1/dev1", 250, 400, "Failed", "EFAULT: task broke touched an unmapped address"),
                Attempt(2, "n1/dev1", 400, 900, "Completed")),
            Task("lost", 1, Attempt(1, "n2/dev0", 3000, 3300, "NodeLost", "ENODEV: node n2 is gone"), Attempt(2, "n1/dev0", 3400, 5000, "Completed")),
            Task("moved", 1, Attempt(1, "n1/dev1", 3000, 3800, "RunLost"), Attempt(2, "n1/dev1", 4000, 4100, "HandedOff"),
                Attempt(3, "n1/dev0", 4200, 6000, "Abandoned")));

        var document = JobTimeline.Of(view, Submitted.AddSeconds(60));
        var attempts = Attempts(document);

        var expected = view.TaskDetails.SelectMany(t => t.AttemptLog.Select(a => (t.Name, a))).ToList();
        Assert.Equal(expected.Count, attempts.Count);
        foreach (var (task, a) in expected)
        {
            var x = attempts.Single(e => Text(e, "name") == task && Int(e["args"], "attempt") == a.Number);
            Assert.Equal((a.StartedAt - Submitted).Ticks / 10, Long(x, "ts"));
            Assert.Equal((a.EndedAt!.Value - a.StartedAt).Ticks / 10, Long(x, "dur"));
            Assert.Equal(a.Outcome.ToLowerInvariant(), Text(x, "cat"));
            Assert.Equal(a.Outcome, Text(x["args"], "outcome"));
            Assert.Equal(task, Text(x["args"], "task"));
            Assert.Equal(view.TaskDetails.Single(t => t.Name == task).Stage, Int(x["args"], "stage"));
            Assert.Equal(a.Error, Text(x["args"], "error"));
            Assert.Equal(a.Error is not null, x["args"]!.AsObject().ContainsKey("error"));
        }
        // A millisecond is a thousand microseconds: "done" starts 1.5 s after submission and lasts 1.25 s.
        var done = attempts.Single(e => Text(e, "name") == "done");
        Assert.Equal((1_500_000L, 1_250_000L), (Long(done, "ts"), Long(done, "dur")));
        var instants = Events(document).Where(e => Text(e, "ph") == "i").ToList();
        var submitted = instants.Single(e => Text(e, "name") == "submitted");
        var finished = instants.Single(e => Text(e, "name") == "finished");
        Assert.Equal((0L, "job", "g", 0, 0), (Long(submitted, "ts"), Text(submitted, "cat"), Text(submitted, "s"), Int(submitted, "pid"), Int(submitted, "tid")));
        Assert.Equal(((view.FinishedAt!.Value - Submitted).Ticks / 10, view.Status), (Long(finished, "ts"), Text(finished["args"], "status")));
        Assert.Equal("ms", Text(document, "displayTimeUnit"));
    }

    [Fact]
    public void A_second_completed_attempt_of_a_task_is_a_recomputation_and_its_first_is_not()
    {
        // "again" completed on n2 (attempt 1), n2 was lost with the result, and it was computed again on n1 (attempt 3);
        // "retried" failed once and then completed: no recomputation. Attempt numbers and end times disagree on purpose
        // in "swapped": attempt 2 ended first, so attempt 1 is the recomputation. "rerun" completed in the job's first run,
        // whose node was then lost; the second run numbers its attempts from 1 again, and its attempt 1 is the recomputation.
        var view = View(Submitted.AddSeconds(20), RunAddresses[..2],
            Task("again", 0, Attempt(1, "n2/dev0", 0, 1000, "Completed"), Attempt(2, "n2/dev1", 1000, 1500, "NodeLost"),
                Attempt(3, "n1/dev0", 2000, 4000, "Completed")),
            Task("retried", 0, Attempt(1, "n1/dev1", 0, 300, "Failed", "EIO: reset"), Attempt(2, "n1/dev1", 300, 800, "Completed")),
            Task("swapped", 1, Attempt(1, "n1/dev0", 5000, 9000, "Completed"), Attempt(2, "n1/dev1", 5000, 6000, "Completed")),
            Task("rerun", 1, Attempt(1, "n3/dev0", 1000, 2000, "Completed"), Attempt(2, "n3/dev1", 1500, 2500, "RunLost"),
                Attempt(1, "n1/dev1", 2600, 3000, "Completed")));

        var flags = Attempts(JobTimeline.Of(view, Submitted.AddSeconds(30))).OrderBy(e => Text(e, "name")).ThenBy(e => Long(e, "ts"))
            .Select(e => (Text(e, "name")!, Int(e["args"], "attempt"), Long(e, "ts") / 1000, e["args"]!["recomputation"]!.GetValue<bool>()));

        Assert.Equal([
            ("again", 1, 0L, false), ("again", 2, 1000L, false), ("again", 3, 2000L, true),
            ("rerun", 1, 1000L, false), ("rerun", 2, 1500L, false), ("rerun", 1, 2600L, true),
            ("retried", 1, 0L, false), ("retried", 2, 300L, false),
            ("swapped", 1, 5000L, true), ("swapped", 2, 5000L, false),
        ], flags);
    }

    [Fact]
    public void Node_losses_within_the_loss_window_are_one_instant_and_beyond_it_are_separate()
    {
        var window = (int)JobTimeline.LossWindow.TotalMilliseconds;
        // n2: three ends each less than the window after the one before (one loss), then one a window later (another
        // loss: exactly the window apart is no longer the same one), and one much later. n3: one loss at the same time as n2's first.
        var firstLoss = 3000;
        int[] ends = [firstLoss, firstLoss + window / 2, firstLoss + window - 1, firstLoss + 2 * window - 1, firstLoss + 10 * window];
        var view = View(Submitted.AddSeconds(60), [.. ends.Select((end, i) => Task($"t{i}", 0,
                Attempt(1, $"n2/dev{i % 2}", end - 500, end, "NodeLost"), Attempt(2, "n1/dev0", end + 100, end + 200, "Completed"))),
            Task("other", 0, Attempt(1, "n3/dev0", 100, firstLoss, "NodeLost"), Attempt(2, "n1/dev1", firstLoss + 10, firstLoss + 20, "Completed"))]);

        var document = JobTimeline.Of(view, Submitted.AddSeconds(90));
        var losses = Events(document).Where(e => Text(e, "cat") == "nodelost" && Text(e, "ph") == "i").ToList();

        Assert.Equal([
                ("node n2 lost", 1000L * firstLoss, "n2", 3),
                ("node n3 lost", 1000L * firstLoss, "n3", 1),
                ("node n2 lost", 1000L * (firstLoss + 2 * window - 1), "n2", 1),
                ("node n2 lost", 1000L * (firstLoss + 10 * window), "n2", 1),
            ],
            losses.Select(e => (Text(e, "name"), Long(e, "ts"), Text(e["args"], "node"), Int(e["args"], "attempts"))));
        Assert.All(losses, e => Assert.Equal(("g", 0, 0), (Text(e, "s"), Int(e, "pid"), Int(e, "tid"))));
        Assert.Equal(losses.Count, Int(document["otherData"], "nodeLosses"));
        Assert.Equal(new JobTimeline.Counts(Events(document).Count, view.Tasks, view.TaskDetails.Sum(t => t.AttemptLog.Length), losses.Count),
            JobTimeline.Count(document));
    }

    [Fact]
    public void A_lost_run_is_an_instant_naming_the_job_node_of_that_run()
    {
        // Two runs: the first, on RunAddresses[0], was lost with two attempts running (they end at the second run's start).
        var view = View(Submitted.AddSeconds(20), RunAddresses[..2],
            Task("a", 0, Attempt(1, "n2/dev0", 500, 4000, "RunLost"), Attempt(2, "n2/dev0", 4000, 5000, "Completed")),
            Task("b", 0, Attempt(1, "n3/dev1", 700, 4000, "RunLost"), Attempt(2, "n3/dev1", 4100, 5000, "Completed")));

        var document = JobTimeline.Of(view, Submitted.AddSeconds(30));
        var lost = Events(document).Single(e => Text(e, "cat") == "runlost" && Text(e, "ph") == "i");

        Assert.Equal($"job's node {RunAddresses[0]} lost", Text(lost, "name"));
        Assert.Equal(4_000_000L, Long(lost, "ts"));
        Assert.Equal((1, RunAddresses[0], 2), (Int(lost["args"], "run"), Text(lost["args"], "node"), Int(lost["args"], "attempts")));
        Assert.Equal(1, Int(document["otherData"], "nodeLosses"));
        Assert.Equal(RunAddresses[..2], document["otherData"]!["runNodes"]!.AsArray().Select(n => n!.GetValue<string>()));
    }

    [Fact]
    public void A_lost_run_that_cannot_be_told_from_the_attempts_is_an_instant_without_run_or_node()
    {
        // Three runs but one end with attempts running: some run was lost while nothing ran, so which one this was is unknown.
        var view = View(Submitted.AddSeconds(20), RunAddresses,
            Task("a", 0, Attempt(1, "n2/dev0", 500, 4000, "RunLost"), Attempt(2, "n2/dev0", 4000, 5000, "Completed")));

        var lost = Events(JobTimeline.Of(view, Submitted.AddSeconds(30))).Single(e => Text(e, "cat") == "runlost" && Text(e, "ph") == "i");

        Assert.Equal("job's node lost", Text(lost, "name"));
        Assert.Equal(["attempts"], lost["args"]!.AsObject().Select(p => p.Key));
        Assert.Equal(1, Int(lost["args"], "attempts"));
    }

    [Fact]
    public void A_running_attempt_is_drawn_until_now_while_the_job_runs_and_until_its_end_once_it_has_ended()
    {
        var running = View(null, Task("t", 0, Attempt(1, "n1/dev0", 1000, null, "Running")));
        var ended = running with { Status = "Failed", Error = "ECANCELED: job j cancelled", FinishedAt = Submitted.AddMilliseconds(3000) };
        var now = Submitted.AddMilliseconds(5000);

        var whileRunning = JobTimeline.Of(running, now);
        var afterEnd = JobTimeline.Of(ended, now);

        var bar = Attempts(whileRunning).Single();
        Assert.Equal(("running", 1_000_000L, 4_000_000L), (Text(bar, "cat"), Long(bar, "ts"), Long(bar, "dur")));
        Assert.Equal(2_000_000L, Long(Attempts(afterEnd).Single(), "dur"));
        Assert.DoesNotContain(Events(whileRunning), e => Text(e, "name") == "finished");
        var finished = Events(afterEnd).Single(e => Text(e, "name") == "finished");
        Assert.Equal((3_000_000L, "Failed", ended.Error), (Long(finished, "ts"), Text(finished["args"], "status"), Text(finished["args"], "error")));
        var other = whileRunning["otherData"]!.AsObject();
        Assert.False(other.ContainsKey("finishedAt"));
        Assert.Equal(("2026-03-04T05:06:07.123Z", "2026-03-04T05:06:12.123Z"), (Text(other, "submittedAt"), Text(other, "now")));
        Assert.Equal("2026-03-04T05:06:10.123Z", Text(afterEnd["otherData"], "finishedAt"));
        Assert.Equal(ended.Error, Text(afterEnd["otherData"], "error"));
    }

    [Fact]
    public void Events_at_the_same_time_keep_the_documented_order_and_one_view_gives_the_same_bytes()
    {
        // At 0: submitted, then the attempts (tasks in the view's order, then in their log's order). At 2 s: an attempt that
        // starts there, then n2's loss, then the lost run, then finished.
        JobView Build() => View(Submitted.AddMilliseconds(2000), RunAddresses[..2],
            Task("z", 0, Attempt(1, "n2/dev0", 0, 0, "Failed", "EIO: first try"), Attempt(2, "n1/dev0", 0, 2000, "RunLost")),
            Task("y", 0, Attempt(1, "n2/dev1", 0, 2000, "NodeLost"), Attempt(2, "n1/dev1", 2000, 2000, "Completed")));
        var now = Submitted.AddSeconds(10);

        var first = JobTimeline.Of(Build(), now).ToJsonString();
        var second = JobTimeline.Of(Build(), now).ToJsonString();
        var later = JobTimeline.Of(Build(), now.AddSeconds(1)).ToJsonString();

        Assert.Equal(first, second);
        Assert.NotEqual(first, later); // "now" is part of the document
        var order = Events(JsonNode.Parse(first)!.AsObject()).Where(e => Text(e, "ph") != "M")
            .Select(e => Text(e, "ph") == "X" ? $"{Text(e, "name")}#{Int(e["args"], "attempt")}" : Text(e, "name")).ToList();
        Assert.Equal(["submitted", "z#1", "z#2", "y#1", "y#2", "node n2 lost", $"job's node {RunAddresses[0]} lost", "finished"], order);
    }

    [Fact]
    public void A_job_without_attempts_is_its_submission_alone()
    {
        var view = View(null);

        var document = JobTimeline.Of(view, Submitted.AddSeconds(1));

        Assert.Equal(["submitted"], Events(document).Select(e => Text(e, "name")));
        Assert.Equal(new JobTimeline.Counts(1, 0, 0, 0), JobTimeline.Count(document));
        Assert.Equal((view.JobId, view.Name, view.Status, 0), (Text(document["otherData"], "jobId"), Text(document["otherData"], "name"),
            Text(document["otherData"], "status"), Int(document["otherData"], "attempts")));
    }

    internal static JobView.AttemptView Attempt(int number, string device, int startMs, int? endMs, string outcome, string? error = null) =>
        new(number, device.Split('/')[0], device, Submitted.AddMilliseconds(startMs), endMs is { } end ? Submitted.AddMilliseconds(end) : null, outcome, error);

    private static JobView.TaskView Task(string name, int stage, params JobView.AttemptView[] log) =>
        new(name, stage, log.Any(a => a.Outcome == "Completed") ? "Completed" : "Placed", log.Length, [.. log.Select(a => a.Device)],
            log.Count(a => a.Outcome == "Completed"), Math.Max(0, log.Count(a => a.Outcome == "Completed") - 1), 0, log.LastOrDefault(a => a.Error is not null)?.Error,
            [.. log]);

    private static JobView View(DateTimeOffset? finished, params JobView.TaskView[] tasks) => View(finished, RunAddresses[..1], tasks);

    private static JobView View(DateTimeOffset? finished, string[] runNodes, params JobView.TaskView[] tasks) =>
        new("job-1", "timeline", finished is null ? "Running" : "Completed", null, runNodes.Length, [.. runNodes], tasks.Length,
            tasks.Count(t => t.Status == "Completed"), [.. tasks], [], Submitted, finished, 0);

    internal static List<JsonNode> Events(JsonObject document) => [.. document["traceEvents"]!.AsArray().Select(e => e!)];

    internal static List<JsonNode> Attempts(JsonObject document) => [.. Events(document).Where(e => Text(e, "ph") == "X")];

    internal static string? Text(JsonNode? node, string name) => node?[name]?.GetValue<string>();
    internal static int Int(JsonNode? node, string name) => node![name]!.GetValue<int>();
    internal static long Long(JsonNode? node, string name) => node![name]!.GetValue<long>();
}

/// <summary>
/// <c>GET /jobs/{id}/timeline</c> and <c>fabric job ID --timeline FILE</c> on three real nodes: a bar for every attempt
/// <c>GET /jobs/{id}</c> reports, on its node and device; an unknown job and a file that cannot be written are refused.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class JobTimelineEndToEndTests(ClusterFixture cluster, ITestOutputHelper output) : JobScenario<ClusterFixture>(cluster, output)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_jobs_timeline_has_a_bar_per_attempt_it_reports_and_the_cli_writes_the_same_document()
    {
        var spec = WideJob("timeline", width: 4, n: 128);
        var jobId = await SubmitAsync(spec, "n1");
        var view = await AwaitJobAsync(jobId, GatewaySet.HasEnded, TimeSpan.FromSeconds(120), "n2");
        using var http = new HttpClient { BaseAddress = new Uri(Cluster["n3"].Gateway + "/") };
        using var response = await http.GetAsync($"jobs/{jobId}/timeline");
        var document = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
        var file = Path.Combine(Cluster.DataRoot, $"{jobId}.timeline.json");
        using var cli = FabricProcess.Start("fabric job --timeline", "job", jobId, "--timeline", file, "--gateway", Cluster["n2"].Gateway);
        var exit = await cli.WaitForExitAsync(CliTimeout);

        Output.WriteLine($"{Describe(view)}\nfabric job {jobId} --timeline {file} → {exit}:\n{cli.Output}");
        Assert.True(view.Status == "Completed", Describe(view));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        var expected = view.TaskDetails.SelectMany(t => t.AttemptLog.Select(a => (Task: t.Name, a.Number, a.Node, a.Device, Category: a.Outcome.ToLowerInvariant(),
            Ts: (a.StartedAt - view.SubmittedAt!.Value).Ticks / 10, Dur: (a.EndedAt!.Value - a.StartedAt).Ticks / 10))).Order().ToList();
        var bars = Bars(document);
        Assert.Equal(expected, bars);
        Assert.True(bars.Select(b => b.Device).Distinct().Count() >= 2, $"every attempt ran on one device: {string.Join(", ", bars)}");
        var other = document["otherData"]!;
        Assert.Equal((jobId, view.Status, view.Tasks, expected.Count), (JobTimelineTests.Text(other, "jobId"), JobTimelineTests.Text(other, "status"),
            JobTimelineTests.Int(other, "tasks"), JobTimelineTests.Int(other, "attempts")));

        Assert.Equal(0, exit);
        var written = JsonNode.Parse(await File.ReadAllTextAsync(file))!.AsObject();
        var counts = JobTimeline.Count(written);
        Assert.Equal(JobTimeline.Count(document), counts);
        Assert.Equal((view.Tasks, expected.Count), (counts.Tasks, counts.Attempts));
        // The job has ended: only otherData.now tells the two documents apart.
        Assert.Equal(document["traceEvents"]!.ToJsonString(), written["traceEvents"]!.ToJsonString());
        Assert.Equal($"wrote the timeline of job {jobId} to {file}: {counts.Tasks} task(s), {counts.Attempts} attempt(s), {counts.NodeLosses} node loss(es), " +
                     $"{counts.Events} trace events; open it in https://ui.perfetto.dev or chrome://tracing", cli.Output.Trim());
    }

    [Fact]
    public async Task An_unknown_jobs_timeline_is_a_404_ENOENT_and_the_cli_refuses_it_and_a_file_it_cannot_write()
    {
        using var http = new HttpClient { BaseAddress = new Uri(Cluster["n1"].Gateway + "/") };
        using var response = await http.GetAsync("jobs/no-such-job/timeline");
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var missing = Path.Combine(Cluster.DataRoot, "unknown.timeline.json");
        using var unknown = FabricProcess.Start("fabric job --timeline (unknown job)", "job", "no-such-job", "--timeline", missing, "--gateway", Cluster["n1"].Gateway);
        var unknownExit = await unknown.WaitForExitAsync(CliTimeout);
        var jobId = await SubmitAsync(JobSamples.ThreeStage(), "n1");
        var nowhere = Path.Combine(Cluster.DataRoot, "no-such-directory", "timeline.json");
        using var unwritable = FabricProcess.Start("fabric job --timeline (no directory)", "job", jobId, "--timeline", nowhere, "--gateway", Cluster["n1"].Gateway);
        var unwritableExit = await unwritable.WaitForExitAsync(CliTimeout);
        using var directory = FabricProcess.Start("fabric job --timeline (a directory)", "job", jobId, "--timeline", Cluster.DataRoot, "--gateway", Cluster["n1"].Gateway);
        var directoryExit = await directory.WaitForExitAsync(CliTimeout);

        Output.WriteLine($"unknown → {unknownExit}: {unknown.Output}\nno directory → {unwritableExit}: {unwritable.Output}\na directory → {directoryExit}: {directory.Output}");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal(("ENOENT", "there is no job no-such-job"), (JobTimelineTests.Text(problem, "code"), JobTimelineTests.Text(problem, "message")));
        Assert.Equal(1, unknownExit);
        Assert.Equal("fabric job: ENOENT: there is no job no-such-job", unknown.Errors.Trim());
        Assert.False(File.Exists(missing));
        Assert.Equal(1, unwritableExit);
        Assert.StartsWith($"fabric job: ENOENT: cannot write the timeline of job {jobId} to {nowhere}: ", unwritable.Errors.Trim());
        Assert.Equal(2, directoryExit);
        Assert.Equal($"fabric job: EINVAL: --timeline: {Cluster.DataRoot} is a directory; name the file to write the timeline of job {jobId} to", directory.Errors.Trim());
    }

    /// <summary>The document's complete events with their node and device read back from its metadata, in order.</summary>
    private static List<(string Task, int Number, string Node, string Device, string Category, long Ts, long Dur)> Bars(JsonObject document)
    {
        var events = JobTimelineTests.Events(document);
        var processes = events.Where(e => JobTimelineTests.Text(e, "name") == "process_name")
            .ToDictionary(e => JobTimelineTests.Int(e, "pid"), e => JobTimelineTests.Text(e["args"], "name")!);
        var threads = events.Where(e => JobTimelineTests.Text(e, "name") == "thread_name")
            .ToDictionary(e => (JobTimelineTests.Int(e, "pid"), JobTimelineTests.Int(e, "tid")), e => JobTimelineTests.Text(e["args"], "name")!);
        return [.. JobTimelineTests.Attempts(document).Select(x => (JobTimelineTests.Text(x["args"], "task")!, JobTimelineTests.Int(x["args"], "attempt"),
                processes[JobTimelineTests.Int(x, "pid")]["node ".Length..], threads[(JobTimelineTests.Int(x, "pid"), JobTimelineTests.Int(x, "tid"))],
                JobTimelineTests.Text(x, "cat")!, JobTimelineTests.Long(x, "ts"), JobTimelineTests.Long(x, "dur")))
            .Order()];
    }
}
