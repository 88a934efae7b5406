using System.Diagnostics;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary><c>fabric demo</c>, the README's main command, run as a newcomer runs it: a fresh process, nothing else running.</summary>
[Collection(ProcessCollection.Name)]
public sealed class ClusterDemoTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Fabric_demo_kills_a_node_mid_job_and_shows_the_job_recover_verified_with_nothing_leaked()
    {
        var clock = Stopwatch.StartNew();
        using var demo = FabricProcess.Start("fabric demo", "demo");

        var exit = await demo.WaitForExitAsync(TimeSpan.FromMinutes(3));
        output.WriteLine($"exit {exit} after {clock.Elapsed.TotalSeconds:0.0} s\n{demo.Output}");

        Assert.True(exit == 0, demo.Output);
        var text = demo.Output;
        Assert.DoesNotContain("✗", text);
        foreach (var step in new[] { "Start a cluster of three node processes", "The devices the cluster sees", "Submit a job", "Kill a node",
                     "Watch the job recover", "Check the result against the host", "nothing leaked", "Restart", "Stop the cluster" })
            Assert.Contains(step, text);
        Assert.Contains("SIGKILL n", text);
        Assert.Contains("✓ the job completed", text);
        Assert.Contains("✓ output sum", text);
        Assert.Contains("✓ zero leaked device memory", text);
        Assert.Contains("Demo finished in", text);
    }
}
