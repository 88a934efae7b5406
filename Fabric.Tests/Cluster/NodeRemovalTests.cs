using Fabric.Core.Gateway;
using Fabric.Node.Cli;
using Fabric.Node.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// <c>fabric nodes</c> (and <c>GET /nodes</c>) keep the nodes removed in the last minutes and why, as <c>ray status</c>
/// keeps its dead nodes: one that stopped gracefully <c>left</c>, one that was killed was <c>downed</c>.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class NodeRemovalTests(ClusterFixture cluster, ITestOutputHelper output) : ClusterTest<ClusterFixture>(cluster, output)
{
    /// <summary>Each node sees a removal when its gossip tells it: asks <paramref name="via"/> until it lists <paramref name="count"/>.</summary>
    private async Task<NodeList> AwaitRemovedAsync(int count, string via = "n1")
    {
        using var gateway = new GatewayClient(Cluster[via].Gateway);
        return await UntilAsync(() => gateway.NodesAsync(CancellationToken.None), list => list.Removed.Length == count,
            TimeSpan.FromSeconds(60), $"{count} removed node(s) listed by {via}");
    }

    [Fact]
    public async Task A_node_that_stopped_is_listed_as_left_and_its_killed_next_incarnation_as_downed_the_latest_first()
    {
        var firstAddress = $"akka.tcp://fabric@{Cluster["n3"].Endpoint}";
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        Cluster["n3"].Process.Terminate();
        Assert.Equal(0, await Cluster["n3"].Process.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var afterLeave = await AwaitRemovedAsync(1);
        await Cluster.RestartAsync("n3");
        await Cluster.AwaitDevicesAsync(ds => ds.Count(d => d.Id.Node == "n3") == 2, TimeSpan.FromSeconds(60));
        Cluster["n3"].Process.Kill();
        var afterKill = await AwaitRemovedAsync(2);
        await AwaitRemovedAsync(2, "n2"); // the CLI asks n2
        using var cli = FabricProcess.Start("fabric nodes", "nodes", "--gateway", Cluster["n2"].Gateway);
        var cliExit = await cli.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Output.WriteLine(cli.Output);
        var left = Assert.Single(afterLeave.Removed);
        Assert.Equal(("n3", firstAddress, "left"), (left.Node, left.Address, left.Reason));
        Assert.InRange(left.AtMs, before, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        Assert.DoesNotContain(afterLeave.Nodes, n => n.Node == "n3");
        Assert.Equal(["downed", "left"], afterKill.Removed.Select(r => r.Reason));
        Assert.All(afterKill.Removed, r => Assert.Equal("n3", r.Node));
        Assert.True(afterKill.Removed[0].AtMs > afterKill.Removed[1].AtMs);
        Assert.Equal(["n1", "n2"], afterKill.Nodes.Select(n => n.Node));
        // The CLI prints the members, then the removed nodes with why and when.
        Assert.Equal(0, cliExit);
        var rows = cli.Output.Split('\n').Where(l => l.Contains("n3") && l.Contains("ago")).ToArray();
        Assert.Equal(2, rows.Length);
        Assert.Contains("downed", rows[0]);
        Assert.Contains(" left ", rows[1]);
    }
}
