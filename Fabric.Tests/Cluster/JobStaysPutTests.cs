using System.Diagnostics;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using Fabric.Node.Cli;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// A node that is SIGKILLed and started again at the same address while a job runs on another node: the job stays on
/// its node (sharding does not move it to the newcomer), and the only attempts lost are those the kills ended.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class JobStaysPutTests(ClusterFixture cluster, ITestOutputHelper output) : JobScenario<ClusterFixture>(cluster, output)
{
    private const int Kills = 2;

    /// <summary>One task pinned to each node, each a chain of matrix products long enough to be killed in the middle of.</summary>
    private static JobSpec PinnedChains(string name, uint n, int products)
    {
        var size = (long)n * n * 4;
        var job = new JobBuilder(name).RandomInput("a", (long)n * n, seed: 21).RandomInput("b", (long)n * n, seed: 22, scale: 1f / n);
        foreach (var node in new[] { "n1", "n2", "n3" })
        {
            for (var i = 0; i < products; i++) job.Buffer($"{node}-p{i}", size);
            job.Output($"{node}-crc", 4);
            job.Task($"on-{node}", t =>
            {
                t.MatMul($"{node}-p0", "a", "b", n, n, n);
                for (var i = 1; i < products; i++) t.MatMul($"{node}-p{i}", $"{node}-p{i - 1}", "b", n, n, n);
                t.Checksum($"{node}-crc", $"{node}-p{products - 1}");
            }, new TaskNeeds(0, node, null));
        }
        return job.Build();
    }

    [Fact]
    public async Task A_killed_node_restarted_at_its_address_does_not_move_the_job_and_its_task_has_one_attempt_per_kill_more()
    {
        var spec = PinnedChains("stays-put", n: 512, products: 8);
        var jobId = await SubmitAsync(spec, "n1");
        var running = await AwaitJobAsync(jobId, v => v.RunNodes.Length > 0, TimeSpan.FromSeconds(60), "n1");
        var jobNode = await NodeNameAsync(running.RunNodes[^1], "n1");
        var victim = jobNode == "n3" ? "n2" : "n3";
        var readers = new[] { "n1", "n2", "n3" }.Where(n => n != victim).ToArray();
        var restarts = new List<string>();

        for (var kill = 1; kill <= Kills; kill++)
        {
            // The victim's task is running its kill-th attempt: end it with the node.
            await AwaitJobAsync(jobId, v => Pinned(v, victim).AttemptLog is { Length: > 0 } log && log.Length == kill && log[^1].Outcome == "Running",
                TimeSpan.FromSeconds(120), readers);
            var port = Cluster[victim].Port;
            Cluster[victim].Process.Kill();
            var clock = Stopwatch.StartNew();
            var back = await Cluster.RestartAsync(victim);
            restarts.Add($"kill {kill}: {victim} back at port {back.Port} (was {port}) after {clock.Elapsed.TotalSeconds:0.0} s");
            Assert.Equal(port, back.Port);
        }
        var view = await AwaitJobAsync(jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(240), readers);

        Output.WriteLine($"job on {jobNode}, {victim} killed and restarted {Kills} times:\n{string.Join("\n", restarts)}");
        foreach (var task in view.TaskDetails)
            Output.WriteLine($"{task.Name}: {string.Join("; ", task.AttemptLog.Select(a => $"#{a.Number} {a.Device} {a.Outcome}"))}");
        AssertEachTaskCompletedOnce(view);
        Assert.Equal(1, view.Runs);
        Assert.Equal(running.RunNodes[^1], Assert.Single(view.RunNodes));
        var pinned = Pinned(view, victim);
        Assert.Equal(Kills + 1, pinned.Attempts);
        Assert.Equal(Kills, pinned.AttemptLog.Count(a => a.Outcome == "NodeLost"));
        Assert.Equal("Completed", pinned.AttemptLog[^1].Outcome);
        Assert.All(pinned.AttemptLog, a => Assert.Equal(victim, a.Node));
        Assert.All(view.TaskDetails.Where(t => t != pinned), t => Assert.Equal(1, t.Attempts));
        Assert.DoesNotContain(view.TaskDetails.SelectMany(t => t.AttemptLog), a => a.Outcome is "HandedOff" or "RunLost");
        Assert.Equal(view.Events, await Cluster.JournalEventsAsync($"job-{jobId}"));
        await VerifyOutputsAsync(jobId, spec, readers[0]);

        // The CLI's table shows the same attempts: each one's device and how it ended.
        using var show = FabricProcess.Start("fabric job", "job", jobId, "--gateway", Cluster[readers[0]].Gateway);
        Assert.Equal(0, await show.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(string.Join(" → ", pinned.AttemptLog.Select(a => $"{a.Device} {a.Outcome}")), show.Output);
    }

    private static JobView.TaskView Pinned(JobView view, string node) => view.TaskDetails.Single(t => t.Name == $"on-{node}");
}
