using System.Diagnostics;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using Fabric.Node.Cli;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// <c>fabric submit --wait</c> and <c>fabric job ID --wait</c> (the real executable) on three real nodes, one of them
/// SIGKILLed while the job runs: the very node whose gateway the CLI was given.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class WaitThroughNodeLossTests(ClusterFixture cluster, ITestOutputHelper output) : JobScenario<ClusterFixture>(cluster, output)
{
    [Fact]
    public async Task Submit_wait_rides_through_the_loss_of_the_node_it_asks_and_job_wait_waits_again()
    {
        var spec = WideJob("wait-node-loss", width: 6, n: 640);
        var file = Path.Combine(Cluster.DataRoot, "wait-node-loss.job.json");
        await File.WriteAllTextAsync(file, JobJson.Write(spec));
        using var before = new GatewayClient(Cluster["n2"].Gateway);
        var known = (await before.JobsAsync(CancellationToken.None)).Select(j => j.JobId).ToHashSet();

        using var submit = FabricProcess.Start("fabric submit --wait", "submit", file, "--wait", "--gateway", Cluster["n1"].Gateway);
        var jobId = await UntilAsync(async () => (await before.JobsAsync(CancellationToken.None)).Select(j => j.JobId).FirstOrDefault(id => !known.Contains(id)),
            id => id is not null, TimeSpan.FromSeconds(60), "the job to be listed");
        await AwaitJobAsync(jobId!, v => v.TaskDetails.Any(t => t.Status == "Placed"), TimeSpan.FromSeconds(60), "n2");
        Cluster["n1"].Process.Kill();
        var clock = Stopwatch.StartNew();
        var exit = await submit.WaitForExitAsync(TimeSpan.FromSeconds(240));

        Output.WriteLine($"killed n1, the gateway fabric submit --wait was given; it exited {exit} {clock.Elapsed.TotalSeconds:0.0} s later:\n{submit.Output}");
        Assert.Equal(0, exit);
        Assert.StartsWith(jobId, submit.Output.Trim());
        Assert.Contains("trying http://127.0.0.1:", submit.Output);
        Assert.Contains("checking 3 output(s): the whole job recomputed on the host", submit.Output);
        Assert.Contains("result verified", submit.Output);
        Assert.DoesNotContain("   at ", submit.Output);

        using var again = FabricProcess.Start("fabric job --wait", "job", jobId!, "--wait", "--gateway", $"{Cluster["n1"].Gateway},{Cluster["n3"].Gateway}");
        var againExit = await again.WaitForExitAsync(TimeSpan.FromSeconds(120));
        using var unchecked_ = FabricProcess.Start("fabric job --wait --no-verify", "job", jobId!, "--wait", "--no-verify", "--gateway", Cluster["n2"].Gateway);
        var uncheckedExit = await unchecked_.WaitForExitAsync(TimeSpan.FromSeconds(120));

        Output.WriteLine($"fabric job {jobId} --wait → {againExit}:\n{again.Output}\n--no-verify → {uncheckedExit}:\n{unchecked_.Output}");
        Assert.Equal(0, againExit);
        Assert.Contains("result verified", again.Output);
        Assert.Equal(0, uncheckedExit);
        Assert.Contains("outputs not checked (--no-verify)", unchecked_.Output);
        Assert.DoesNotContain("checking", unchecked_.Output);

        using var completed = FabricProcess.Start("fabric jobs --status completed", "jobs", "--status", "completed", "--gateway", Cluster["n3"].Gateway);
        await completed.WaitForExitAsync(TimeSpan.FromSeconds(60));
        using var running = FabricProcess.Start("fabric jobs --status running", "jobs", "--status", "Running", "--gateway", Cluster["n3"].Gateway);
        await running.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Contains(jobId!, completed.Output);
        Assert.DoesNotContain(jobId!, running.Output);
    }

    [Fact]
    public async Task Job_wait_of_an_unknown_job_says_so_and_exits_1()
    {
        using var wait = FabricProcess.Start("fabric job --wait", "job", "no-such-job", "--wait", "--gateway", Cluster["n3"].Gateway);
        var exit = await wait.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exit);
        Assert.Contains("fabric job: ENOENT: there is no job no-such-job", wait.Errors);
    }
}
