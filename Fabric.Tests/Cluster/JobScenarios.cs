using System.Diagnostics;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using Fabric.Node.Cli;
using Fabric.Node.Jobs;
using Fabric.Tests.Persistence;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>Jobs on three real node processes: across nodes, through the loss of a task node, through the loss of the job's own node.</summary>
public abstract class JobScenario<TFixture>(TFixture cluster, ITestOutputHelper output) : ClusterTest<TFixture>(cluster, output)
    where TFixture : ClusterFixture
{
    /// <summary>
    /// Three stages: <paramref name="width"/> matmul-and-scale tasks, pairwise adds, then one task adding the pairs and
    /// summing and checksumming the result. Large enough matrices that a node can be killed while tasks run.
    /// </summary>
    public static JobSpec WideJob(string name, int width, uint n)
    {
        var size = (long)n * n * 4;
        var job = new JobBuilder(name).RandomInput("a", (long)n * n, seed: 11).RandomInput("b", (long)n * n, seed: 12, scale: 0.5f);
        for (var i = 0; i < width; i++)
        {
            var k = i;
            job.Buffer($"p{k}", size).Buffer($"q{k}", size)
                .Task($"mul{k}", t => t.MatMul($"p{k}", "a", "b", n, n, n).Scale($"q{k}", $"p{k}", k + 1));
        }
        for (var j = 0; j < width / 2; j++)
        {
            var k = j;
            job.Buffer($"r{k}", size).Task($"pair{k}", t => t.Add($"r{k}", $"q{2 * k}", $"q{2 * k + 1}"));
        }
        job.Output("s", size).Output("total", 4).Output("crc", 4);
        job.Task("sum", t =>
        {
            var previous = "r0";
            for (var j = 1; j < width / 2; j++)
            {
                var next = j == width / 2 - 1 ? "s" : $"s{j}";
                if (next != "s") job.Buffer(next, size);
                t.Add(next, previous, $"r{j}");
                previous = next;
            }
            t.ReduceSum("total", "s").Checksum("crc", "s");
        });
        return job.Build();
    }

    protected async Task<JobView> AwaitJobAsync(string jobId, Func<JobView, bool> until, TimeSpan timeout, params string[] gateways)
    {
        var clock = Stopwatch.StartNew();
        var turn = 0;
        JobView? last = null;
        while (true)
        {
            using var gateway = new GatewayClient(Cluster[gateways[turn++ % gateways.Length]].Gateway);
            try
            {
                var view = last = await gateway.JobAsync(jobId, CancellationToken.None);
                if (until(view)) return view;
            }
            catch (GatewayException e) { Output.WriteLine($"{clock.Elapsed.TotalSeconds:0.0} s: {e.Message}"); }
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"job {jobId} did not reach the expected state within {timeout.TotalSeconds:0} s; last seen: " +
                                           (last is null ? "nothing" : Describe(last)));
            await Task.Delay(200);
        }
    }

    /// <summary>A job's status and each task's attempts, for a failure message.</summary>
    protected static string Describe(JobView view) =>
        $"{view.Status} ({view.Runs} runs){(view.Error is null ? "" : $", {view.Error}")}; " + string.Join("; ", view.TaskDetails.Select(t =>
            $"{t.Name}: {string.Join(", ", t.AttemptLog.Select(a => $"#{a.Number} {a.Device} {a.Outcome}{(a.Error is null ? "" : $" ({a.Error})")}"))}"));

    /// <summary>Checks every output of a completed job against the host reference; returns them.</summary>
    protected async Task VerifyOutputsAsync(string jobId, JobSpec spec, string via)
    {
        using var gateway = new GatewayClient(Cluster[via].Gateway);
        var expected = JobReference.Evaluate(spec);
        var plan = JobPlan.Of(spec);
        foreach (var output in spec.Buffers.Where(b => b.Output))
        {
            var actual = await gateway.OutputAsync(jobId, output.Name, CancellationToken.None);
            Assert.True(JobReference.Matches(expected[output.Name], actual, plan.ProducerKernel(output.Name)), $"output {output.Name} differs from the host reference");
        }
    }

    protected static void AssertEachTaskCompletedOnce(JobView view)
    {
        Assert.Equal("Completed", view.Status);
        Assert.All(view.TaskDetails, t => Assert.Equal(1, t.Completions));
        Assert.Equal(view.Tasks, view.CompletedTasks);
    }

    protected async Task<string> SubmitAsync(JobSpec spec, string via)
    {
        using var gateway = new GatewayClient(Cluster[via].Gateway);
        return await gateway.SubmitAsync(JobJson.Write(spec), CancellationToken.None);
    }

    /// <summary>The node name of an Akka address, as the gateway lists members.</summary>
    protected async Task<string> NodeNameAsync(string address, string via)
    {
        using var gateway = new GatewayClient(Cluster[via].Gateway);
        return (await gateway.NodesAsync(CancellationToken.None)).Nodes.Single(n => n.Address == address).Node;
    }
}

public abstract class JobRunsAcrossNodes<TFixture>(TFixture cluster, ITestOutputHelper output) : JobScenario<TFixture>(cluster, output)
    where TFixture : ClusterFixture
{
    [Fact]
    public async Task A_three_stage_job_runs_on_devices_of_several_nodes_and_passes_buffers_p2p()
    {
        var spec = WideJob("across", width: 4, n: 256);

        var jobId = await SubmitAsync(spec, "n2");
        var view = await AwaitJobAsync(jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(120), "n1");

        AssertEachTaskCompletedOnce(view);
        Assert.True(view.TaskDetails.SelectMany(t => t.Placements).Select(p => p.Split('/')[0]).Distinct().Count() >= 2,
            $"every task ran on one node: {string.Join(", ", view.TaskDetails.SelectMany(t => t.Placements))}");
        Assert.Equal(3, view.TaskDetails.Select(t => t.Stage).Distinct().Count());
        await VerifyOutputsAsync(jobId, spec, "n3");
        // The journal holds the whole history: submitted, the run, each task placed and completed, the result.
        var stored = await Cluster.JournalEventsAsync($"job-{jobId}");
        Assert.Equal(view.Events, stored);
        Assert.True(stored >= 3 + 2 * view.Tasks, $"only {stored} events for {view.Tasks} tasks");
        await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.MemoryUsed == 0 && d.OpenContexts == 0), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task The_example_of_the_jobs_readme_runs_as_printed_on_a_cluster_of_default_nodes()
    {
        var readme = File.ReadAllText(Path.Combine(RepositoryRoot(), "Fabric.Core", "Jobs", "README.md"));
        var start = readme.IndexOf("```jsonc", StringComparison.Ordinal) + "```jsonc".Length;
        var spec = JobJson.Parse(readme[start..readme.IndexOf("```", start, StringComparison.Ordinal)]);

        var jobId = await SubmitAsync(spec, "n1");
        var view = await AwaitJobAsync(jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(60), "n2");

        AssertEachTaskCompletedOnce(view);
        await VerifyOutputsAsync(jobId, spec, "n3");
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Fabric.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no Fabric.sln above {AppContext.BaseDirectory}");
    }

    [Fact]
    public async Task A_program_submits_follows_and_fetches_a_job_with_the_client_library_alone()
    {
        var spec = WideJob("library", width: 4, n: 32);
        var jobId = $"lib-{Guid.NewGuid():N}"[..20];
        var seen = new List<JobView>();
        var notes = new List<string>();
        // The first gateway given is not there: the set moves on to the next, and learns the rest from it.
        using var gateways = new GatewaySet(["http://127.0.0.1:1", Cluster["n2"].Gateway]) { Note = notes.Add };

        var outcome = await Submission.SubmitAsync(gateways, spec, jobId, TimeSpan.FromSeconds(20), Submission.SettleAfter, CancellationToken.None);
        var view = await gateways.FollowAsync(jobId, TimeSpan.FromSeconds(60), seen.Add, CancellationToken.None);
        var output = spec.Buffers.First(b => b.Output).Name;
        var bytes = await gateways.AskAsync((c, t) => c.OutputAsync(jobId, output, t), GatewaySet.ReadPatience, CancellationToken.None);

        Assert.Equal(Submission.Outcome.Accepted, outcome);
        Assert.True(GatewaySet.HasEnded(view));
        Assert.Equal("Completed", view.Status);
        Assert.Equal(jobId, view.JobId);
        Assert.Same(view, seen[^1]);
        Assert.True(seen.Zip(seen.Skip(1)).All(p => p.Item1.CompletedTasks <= p.Item2.CompletedTasks), "completed tasks went backwards");
        Assert.Contains(notes, n => n.Contains("127.0.0.1:1") && n.Contains(Cluster["n2"].Gateway));
        Assert.Equal(Cluster.Members.Select(m => m.Gateway).Order(), gateways.Urls.Skip(1).Order());
        Assert.True(JobReference.Matches(JobReference.Evaluate(spec)[output], bytes, JobPlan.Of(spec).ProducerKernel(output)));
        // The library is Fabric.Core alone: a program needs neither the node nor the devices.
        Assert.DoesNotContain(typeof(GatewaySet).Assembly.GetReferencedAssemblies(), a => a.Name is "Fabric.Node" or "Fabric.Devices");
    }

    [Fact]
    public async Task A_refusal_is_a_problem_document_with_the_code_as_title_and_the_sentence_as_detail()
    {
        using var http = new HttpClient { BaseAddress = new Uri(Cluster["n1"].Gateway) };

        using var missing = await http.GetAsync("jobs/no-such-job");
        using var bad = await http.PostAsync("jobs", new StringContent("{ \"name\": ", System.Text.Encoding.UTF8, "application/json"));
        var problem = System.Text.Json.JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        Assert.Equal("ENOENT", problem.GetProperty("title").GetString());
        Assert.Equal("there is no job no-such-job", problem.GetProperty("detail").GetString());
        Assert.Equal("ENOENT", problem.GetProperty("code").GetString());
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("jobs")).StatusCode);
    }

    [Fact]
    public async Task Node_logs_are_one_format_through_Microsoft_Extensions_Logging_with_Fabric_lifecycle_at_Information()
    {
        var jobId = await SubmitAsync(WideJob("logged", width: 4, n: 16), "n1");
        await AwaitJobAsync(jobId, v => v.Status == "Completed", TimeSpan.FromSeconds(60), "n2");

        var line = $"info: Fabric.Node.Jobs.JobEntityActor[0] job {jobId} Completed after 1 runs";
        var logs = await UntilAsync(() => Task.FromResult(string.Join("\n", Cluster.Members.Select(m => m.Process.Output))), all => all.Contains(line),
            TimeSpan.FromSeconds(10), $"the line '{line}' in a node's log");
        var logLines = logs.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trce|dbug|info|warn|fail|crit): ")).ToList();

        Assert.Contains(logLines, l => l.EndsWith(line, StringComparison.Ordinal));
        Assert.Contains(logLines, l => l.Contains("info: Fabric.Node.Cluster.NodeRegistryActor[0] node n2 at akka.tcp://fabric@127.0.0.1:"));
        Assert.DoesNotContain(logs.Split('\n'), l => l.StartsWith("[WARNING][", StringComparison.Ordinal) || l.StartsWith("[INFO][", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Fabric_health_says_the_node_is_ready_with_the_members_it_sees_and_exits_0()
    {
        using var health = FabricProcess.Start("fabric health", "health", "--gateway", Cluster["n2"].Gateway);
        var exit = await health.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(0, exit);
        Assert.Equal("n2 is Up: 3 of 3 member(s) up, jobs ready", health.Output.Trim());
    }

    [Fact]
    public async Task Invalid_specs_are_refused_with_a_sentence_naming_the_task_and_nothing_is_stored()
    {
        using var gateway = new GatewayClient(Cluster["n1"].Gateway);
        var before = (await gateway.JobsAsync(CancellationToken.None)).Length;
        var cyclic = JobJson.Write(new JobSpec("cyclic",
            [new BufferSpec("x", 16, null, false), new BufferSpec("y", 16, null, true)],
            [new TaskSpec("t1", [KernelStep.Copy("x", "y")], new TaskNeeds(0, null, null)), new TaskSpec("t2", [KernelStep.Copy("y", "x")], new TaskNeeds(0, null, null))]));
        var huge = JobJson.Write(new JobSpec("huge", [new BufferSpec("x", 1L << 32, new BufferInit(InitKind.Zero, null, 0, 0), false), new BufferSpec("y", 1L << 32, null, true)],
            [new TaskSpec("big", [KernelStep.Copy("y", "x")], new TaskNeeds(0, null, null))]));

        var cycle = await Assert.ThrowsAsync<GatewayException>(() => gateway.SubmitAsync(cyclic, CancellationToken.None));
        var memory = await Assert.ThrowsAsync<GatewayException>(() => gateway.SubmitAsync(huge, CancellationToken.None));
        var broken = await Assert.ThrowsAsync<GatewayException>(() => gateway.SubmitAsync("{ \"name\": ", CancellationToken.None));

        Assert.Contains("EINVAL", cycle.Message);
        Assert.Contains("t1", cycle.Message);
        Assert.Contains("ENOMEM", memory.Message);
        Assert.Contains("big", memory.Message);
        Assert.Contains("EINVAL", broken.Message);
        Assert.Equal(before, (await gateway.JobsAsync(CancellationToken.None)).Length);
    }

    [Fact]
    public async Task Inline_data_over_the_cluster_message_limit_is_refused_at_once_naming_the_limit_and_leaves_no_job()
    {
        using var gateway = new GatewayClient(Cluster["n1"].Gateway);
        var before = await gateway.JobsAsync(CancellationToken.None);
        static string Job(string name, int bytes) => JobJson.Write(new JobBuilder(name)
            .Input("x", Enumerable.Range(0, bytes).Select(i => (byte)(i * 7)).ToArray()).Output("y", bytes)
            .Task("copy", t => t.Copy("y", "x")).Build());

        var clock = Stopwatch.StartNew();
        var tooBig = await Assert.ThrowsAsync<GatewayException>(() => gateway.SubmitAsync(Job("too-big", 17 << 20), CancellationToken.None, jobId: "too-big-1"));
        var refusedAfter = clock.Elapsed;
        var fits = await gateway.SubmitAsync(Job("fits", 3 << 20), CancellationToken.None);
        var view = await AwaitJobAsync(fits, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(60), "n2", "n3");
        var after = await gateway.JobsAsync(CancellationToken.None);

        Output.WriteLine($"refused after {refusedAfter.TotalSeconds:0.00} s: {tooBig.Message}");
        Assert.StartsWith($"E2BIG: job 'too-big': the inline data of input 'x' is {17 << 20:N0} bytes", tooBig.Message);
        Assert.Contains($"the limit is {(16 << 20) - (256 << 10):N0} bytes", tooBig.Message);
        Assert.False(tooBig.Transient);
        Assert.True(refusedAfter < TimeSpan.FromSeconds(10), $"refused only after {refusedAfter.TotalSeconds:0.0} s");
        Assert.Equal("Completed", view.Status);
        Assert.Equal(3 << 20, (await gateway.OutputAsync(fits, "y", CancellationToken.None)).Length);
        Assert.Equal(before.Select(j => j.JobId).Append(fits).Order(), after.Select(j => j.JobId).Order());
        Assert.DoesNotContain(after, j => j.Status == "Unknown");
        var ghost = await Assert.ThrowsAsync<GatewayException>(() => gateway.JobAsync("too-big-1", CancellationToken.None));
        Assert.StartsWith("ENOENT", ghost.Message);
    }

    [Fact]
    public async Task Fabric_job_cancel_stops_a_running_job_releases_its_device_memory_and_persists_Cancelled()
    {
        var jobId = await SubmitAsync(WideJob("to-cancel", width: 6, n: 640), "n1");
        await AwaitJobAsync(jobId, v => v.TaskDetails.Any(t => t.Status == "Placed"), TimeSpan.FromSeconds(60), "n2");

        using var cancel = FabricProcess.Start("fabric job --cancel", "job", jobId, "--cancel", "--gateway", Cluster["n2"].Gateway);
        var exit = await cancel.WaitForExitAsync(TimeSpan.FromSeconds(60));
        using var wait = FabricProcess.Start("fabric job --wait", "job", jobId, "--wait", "--gateway", Cluster["n3"].Gateway);
        var waitExit = await wait.WaitForExitAsync(TimeSpan.FromSeconds(60));
        await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.MemoryUsed == 0 && d.OpenContexts == 0), TimeSpan.FromSeconds(30));
        using var gateway = new GatewayClient(Cluster["n3"].Gateway);
        var view = await gateway.JobAsync(jobId, CancellationToken.None);
        var again = await gateway.CancelAsync(jobId, CancellationToken.None);
        var done = await SubmitAsync(WideJob("done", width: 4, n: 16), "n1");
        await AwaitJobAsync(done, v => v.Status == "Completed", TimeSpan.FromSeconds(60), "n1");
        var ended = await Assert.ThrowsAsync<GatewayException>(() => gateway.CancelAsync(done, CancellationToken.None));
        var unknown = await Assert.ThrowsAsync<GatewayException>(() => gateway.CancelAsync("no-such-job", CancellationToken.None));

        Output.WriteLine($"{cancel.Output}\n{wait.Output}");
        Assert.Equal(0, exit);
        Assert.Contains($"job {jobId} cancelled with ", cancel.Output);
        Assert.Equal(1, waitExit);
        Assert.Contains($"job {jobId} was cancelled: ECANCELED", wait.Output);
        Assert.Equal("Cancelled", view.Status);
        Assert.True(view.CompletedTasks < view.Tasks, $"all {view.Tasks} tasks had completed before the cancel");
        Assert.Equal("Cancelled", again.Status);
        Assert.Equal(view.Events, again.Events);
        Assert.Equal(view.Events, await Cluster.JournalEventsAsync($"job-{jobId}")); // Cancelled is the last event, persisted
        Assert.StartsWith("EINVAL: job", ended.Message);
        Assert.Contains("has already Completed", ended.Message);
        Assert.StartsWith("ENOENT", unknown.Message);
        Assert.False(ended.Transient || unknown.Transient);
    }

    [Fact]
    public async Task A_brief_view_has_the_full_views_status_counts_and_stage_progress_without_the_tasks_records()
    {
        var jobId = await SubmitAsync(WideJob("brief", width: 4, n: 16), "n1");
        var full = await AwaitJobAsync(jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(60), "n2");
        using var gateway = new GatewayClient(Cluster["n3"].Gateway);
        var brief = await gateway.JobBriefAsync(jobId, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = new Uri(Cluster["n3"].Gateway) };
        using var bad = await http.GetAsync($"jobs/{jobId}?tasks=maybe");
        var problem = System.Text.Json.JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement;
        using var missing = await http.GetAsync("jobs/no-such-job?tasks=false");

        Assert.Equal("Completed", full.Status);
        Assert.Empty(brief.TaskDetails);
        Assert.Equal((full.JobId, full.Name, full.Status, full.Runs, full.Tasks, full.CompletedTasks, full.Events, full.SubmittedAt, full.FinishedAt),
            (brief.JobId, brief.Name, brief.Status, brief.Runs, brief.Tasks, brief.CompletedTasks, brief.Events, brief.SubmittedAt, brief.FinishedAt));
        Assert.Equal([.. full.RunNodes], brief.RunNodes.ToArray());
        Assert.Equal([.. full.Outputs], brief.Outputs.ToArray());
        // Stages as the tasks' records count them: WideJob has 3 (the products, the reduction, the checksum).
        var stages = full.TaskDetails.GroupBy(t => t.Stage).OrderBy(g => g.Key)
            .Select(g => new JobView.StageView(g.Key, g.Count(), g.Count(t => t.Completions > 0))).ToArray();
        Assert.Equal(3, stages.Length);
        Assert.Equal(stages, full.Stages.ToArray());
        Assert.Equal(stages, brief.Stages.ToArray());
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("EINVAL", problem.GetProperty("title").GetString());
        Assert.Contains("tasks=maybe", problem.GetProperty("detail").GetString());
        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
        // The list's brief form: every job the full list has, each without its tasks' records and with the same counts.
        var list = await gateway.JobsAsync(CancellationToken.None);
        var briefs = await gateway.JobsBriefAsync(CancellationToken.None);
        using var badList = await http.GetAsync("jobs?tasks=no");
        Assert.Equal(list.Select(j => j.JobId).Order(), briefs.Select(j => j.JobId).Order());
        Assert.All(briefs, b => Assert.Empty(b.TaskDetails));
        var listed = briefs.Single(b => b.JobId == jobId);
        Assert.Equal((brief.Status, brief.Tasks, brief.CompletedTasks, brief.Events), (listed.Status, listed.Tasks, listed.CompletedTasks, listed.Events));
        Assert.Equal(stages, listed.Stages.ToArray());
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, badList.StatusCode);
    }

    [Fact]
    public async Task A_jobs_events_read_from_the_journal_tell_its_history_as_its_view_counts_it_through_the_gateway_and_the_CLI()
    {
        var jobId = await SubmitAsync(WideJob("history", width: 4, n: 16), "n1");
        var view = await AwaitJobAsync(jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(60), "n2");

        using var gateway = new GatewayClient(Cluster["n3"].Gateway);
        var events = await gateway.EventsAsync(jobId, 1, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = new Uri(Cluster["n2"].Gateway) };
        var page = System.Text.Json.JsonSerializer.Deserialize<JobHistoryEntry[]>(await http.GetStringAsync($"jobs/{jobId}/events?from=3&max=2"),
            Fabric.Node.Gateway.HttpGateway.Json)!;
        using var missing = await http.GetAsync("jobs/no-such-job/events");
        var problem = System.Text.Json.JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement;
        using var beyond = await http.GetAsync($"jobs/{jobId}/events?from={events.Length + 1}");
        using var badMax = await http.GetAsync($"jobs/{jobId}/events?max=0");
        using var cli = FabricProcess.Start("fabric job --events", "job", jobId, "--events", "--gateway", Cluster["n1"].Gateway);
        var cliExit = await cli.WaitForExitAsync(TimeSpan.FromSeconds(60));
        using var cliMissing = FabricProcess.Start("fabric job --events (unknown)", "job", "no-such-job", "--events", "--gateway", Cluster["n1"].Gateway);
        var cliMissingExit = await cliMissing.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Output.WriteLine(cli.Output);
        AssertEachTaskCompletedOnce(view);
        Assert.Equal(Enumerable.Range(1, (int)view.Events).Select(i => (long)i), events.Select(e => e.Sequence));
        Assert.Equal("submitted", events[0].Kind);
        Assert.Equal($"job {jobId} (history) submitted: {view.Tasks} tasks in 3 stages", events[0].Text[..events[0].Text.LastIndexOf(',')]);
        Assert.Equal(view.SubmittedAt!.Value.ToUnixTimeMilliseconds(), events[0].AtMs);
        Assert.Equal("job-completed", events[^1].Kind);
        Assert.Equal(view.FinishedAt!.Value.ToUnixTimeMilliseconds(), events[^1].AtMs);
        Assert.Equal(view.Runs, events.Count(e => e.Kind == "run-started"));
        Assert.Equal(view.TaskDetails.Sum(t => t.Attempts), events.Count(e => e.Kind == "placed"));
        foreach (var task in view.TaskDetails)
        {
            Assert.Equal(task.Attempts, events.Count(e => e.Kind == "placed" && e.Text.StartsWith($"task {task.Name} placed on ", StringComparison.Ordinal)));
            var completed = Assert.Single(events, e => e.Kind == "completed" && e.Text.StartsWith($"task {task.Name} ", StringComparison.Ordinal));
            Assert.StartsWith($"task {task.Name} completed on {task.AttemptLog[^1].Device} in ", completed.Text);
        }
        Assert.Equal(view.Tasks, events.Count(e => e.Kind == "completed"));
        Assert.Equal(events[2..4], page);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        Assert.Equal("ENOENT", problem.GetProperty("title").GetString());
        Assert.Equal("there is no job no-such-job", problem.GetProperty("detail").GetString());
        Assert.Equal(System.Net.HttpStatusCode.OK, beyond.StatusCode);
        Assert.Equal("[]", await beyond.Content.ReadAsStringAsync());
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, badMax.StatusCode);

        // The CLI: one line per event, its time in ISO-8601 UTC, #sequence, the sentence.
        Assert.Equal(0, cliExit);
        var lines = cli.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(events.Select(e => DateTimeOffset.FromUnixTimeMilliseconds(e.AtMs).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'",
            System.Globalization.CultureInfo.InvariantCulture) + $" #{e.Sequence} {e.Text}"), lines);
        Assert.Equal(1, cliMissingExit);
        Assert.Equal("fabric job: ENOENT: there is no job no-such-job", cliMissing.Errors.Trim());
    }

    [Fact]
    public async Task A_submission_under_a_chosen_id_starts_the_job_once_however_often_it_is_sent()
    {
        using var gateway = new GatewayClient(Cluster["n2"].Gateway);
        var spec = JobJson.Write(WideJob("chosen", width: 4, n: 32));
        var other = JobJson.Write(WideJob("another", width: 4, n: 32));

        var first = await gateway.SubmitAsync(spec, CancellationToken.None, jobId: "chosen-1");
        var again = await gateway.SubmitAsync(spec, CancellationToken.None, jobId: "chosen-1");
        var taken = await Assert.ThrowsAsync<GatewayException>(() => gateway.SubmitAsync(other, CancellationToken.None, jobId: "chosen-1"));
        var reserved = await Assert.ThrowsAsync<GatewayException>(() => gateway.SubmitAsync(spec, CancellationToken.None, jobId: "index"));
        var malformed = await Assert.ThrowsAsync<GatewayException>(() => gateway.SubmitAsync(spec, CancellationToken.None, jobId: "-no"));
        var view = await AwaitJobAsync("chosen-1", v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(60), "n3");

        Assert.Equal("chosen-1", first);
        Assert.Equal("chosen-1", again);
        Assert.StartsWith("EEXIST", taken.Message);
        Assert.False(taken.Transient);
        Assert.StartsWith("EINVAL", reserved.Message);
        Assert.Contains("reserved", reserved.Message);
        Assert.StartsWith("EINVAL", malformed.Message);
        AssertEachTaskCompletedOnce(view);
        Assert.Equal(1, view.Runs);
        Assert.Single(await gateway.JobsAsync(CancellationToken.None), j => j.JobId == "chosen-1");
        Assert.DoesNotContain(await gateway.JobsAsync(CancellationToken.None), j => j.JobId is "index" or "-no");
    }
}

public abstract class JobSurvivesTaskNodeLoss<TFixture>(TFixture cluster, ITestOutputHelper output) : JobScenario<TFixture>(cluster, output)
    where TFixture : ClusterFixture
{
    [Fact]
    public async Task Sigkill_of_a_node_running_tasks_mid_job_still_completes_each_task_exactly_once_with_the_right_result()
    {
        var spec = WideJob("task-node-loss", width: 6, n: 640);
        var jobId = await SubmitAsync(spec, "n1");
        // Wait until tasks run, and pick a node that runs one but does not host the job entity.
        var running = await AwaitJobAsync(jobId, v => v.RunNodes.Length > 0 && v.TaskDetails.Count(t => t.Status == "Placed") >= 3, TimeSpan.FromSeconds(60), "n1");
        var entityNode = await NodeNameAsync(running.RunNodes[^1], "n1");
        var victim = running.TaskDetails.Where(t => t.Status == "Placed").Select(t => t.Placements[^1].Split('/')[0]).First(n => n != entityNode);
        var survivor = new[] { "n1", "n2", "n3" }.First(n => n != victim);

        Cluster[victim].Process.Kill();
        var clock = Stopwatch.StartNew();
        var view = await AwaitJobAsync(jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(180), survivor);

        Output.WriteLine($"killed {victim} (entity on {entityNode}); job {view.Status} {clock.Elapsed.TotalSeconds:0.0} s later");
        AssertEachTaskCompletedOnce(view);
        Assert.Contains(view.TaskDetails, t => t.Attempts > 1 || t.Recomputations > 0);
        await VerifyOutputsAsync(jobId, spec, survivor);
    }
}

public abstract class JobSurvivesEntityNodeLoss<TFixture>(TFixture cluster, ITestOutputHelper output) : JobScenario<TFixture>(cluster, output)
    where TFixture : ClusterFixture
{
    [Fact]
    public async Task Sigkill_of_the_node_hosting_the_job_recovers_it_from_the_journal_elsewhere_and_completes_it_once()
    {
        var spec = WideJob("entity-node-loss", width: 6, n: 640);
        var jobId = await SubmitAsync(spec, "n1");
        var running = await AwaitJobAsync(jobId, v => v.RunNodes.Length > 0 && v.TaskDetails.Any(t => t.Status == "Placed"), TimeSpan.FromSeconds(60), "n1");
        var entityNode = await NodeNameAsync(running.RunNodes[^1], "n1");
        var survivors = new[] { "n1", "n2", "n3" }.Where(n => n != entityNode).ToArray();

        Cluster[entityNode].Process.Kill();
        var clock = Stopwatch.StartNew();
        var view = await AwaitJobAsync(jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(180), survivors);

        Output.WriteLine($"killed {entityNode}, the job's node; job {view.Status} {clock.Elapsed.TotalSeconds:0.0} s later, runs on {string.Join(", ", view.RunNodes)}");
        AssertEachTaskCompletedOnce(view);
        Assert.True(view.Runs >= 2, $"the job ran {view.Runs} time(s)");
        Assert.DoesNotContain(view.RunNodes[^1], running.RunNodes[^1]);
        await VerifyOutputsAsync(jobId, spec, survivors[0]);
    }
}

// The scenarios against each journal: a SQLite file the three nodes share, and the local PostgreSQL server.
[Collection(ProcessCollection.Name)] public sealed class JobRunsAcrossNodesOnSqlite(ClusterFixture c, ITestOutputHelper o) : JobRunsAcrossNodes<ClusterFixture>(c, o);
[Collection(ProcessCollection.Name)] public sealed class JobSurvivesTaskNodeLossOnSqlite(ClusterFixture c, ITestOutputHelper o) : JobSurvivesTaskNodeLoss<ClusterFixture>(c, o);
[Collection(ProcessCollection.Name)] public sealed class JobSurvivesEntityNodeLossOnSqlite(ClusterFixture c, ITestOutputHelper o) : JobSurvivesEntityNodeLoss<ClusterFixture>(c, o);
[Collection(ProcessCollection.Name)] public sealed class JobRunsAcrossNodesOnPostgres(PostgresClusterFixture c, ITestOutputHelper o) : JobRunsAcrossNodes<PostgresClusterFixture>(c, o);
[Collection(ProcessCollection.Name)] public sealed class JobSurvivesTaskNodeLossOnPostgres(PostgresClusterFixture c, ITestOutputHelper o) : JobSurvivesTaskNodeLoss<PostgresClusterFixture>(c, o);
[Collection(ProcessCollection.Name)] public sealed class JobSurvivesEntityNodeLossOnPostgres(PostgresClusterFixture c, ITestOutputHelper o) : JobSurvivesEntityNodeLoss<PostgresClusterFixture>(c, o);

/// <summary>
/// The three nodes' journal in the local PostgreSQL server, in a database of this fixture's own (created here, dropped
/// at the end): nothing another test class stored is recovered by these nodes, and nothing of theirs outlives them.
/// </summary>
public sealed class PostgresClusterFixture : ClusterFixture
{
    private readonly string _database = $"fabric_test_{Guid.NewGuid():N}"[..24];
    private string? _connectionString;

    private static string Server() => Environment.GetEnvironmentVariable(PersistenceSmokeTests.PostgresVariable)
        ?? throw new InvalidOperationException($"{PersistenceSmokeTests.PostgresVariable} is not set: run ./test.sh, which installs and starts the local PostgreSQL server");

    public override async Task InitializeAsync()
    {
        await AdministerAsync($"CREATE DATABASE {_database}");
        _connectionString = new Npgsql.NpgsqlConnectionStringBuilder(Server()) { Database = _database }.ConnectionString;
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_connectionString is not null) await AdministerAsync($"DROP DATABASE IF EXISTS {_database} WITH (FORCE)");
    }

    /// <summary>Runs a statement in the server's own database (the one <see cref="PersistenceSmokeTests.PostgresVariable"/> names).</summary>
    private static async Task AdministerAsync(string statement)
    {
        await using var connection = new Npgsql.NpgsqlConnection(Server());
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(statement, connection);
        await command.ExecuteNonQueryAsync();
    }

    protected override string[] JournalArguments() =>
        ["--postgres", _connectionString ?? throw new InvalidOperationException("the fixture's database is not created yet")];
}
