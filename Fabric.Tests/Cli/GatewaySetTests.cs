using Fabric.Core.Gateway;
using Fabric.Node.Cli;
using Fabric.Node.Cluster;
using Fabric.Node.Gateway;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Fabric.Tests.Cli;

/// <summary>How a CLI command learns the cluster's gateways from <c>GET /nodes</c>, against a scripted gateway that is busy at first.</summary>
public sealed class GatewaySetTests
{
    [Fact]
    public async Task Learning_asks_again_while_the_gateway_answers_503_then_adds_every_gateway_the_members_publish()
    {
        var asked = 0;
        await using var server = await NodesServer(() => Interlocked.Increment(ref asked) < 3 ? null :
            [new("n1", "akka.tcp://fabric@127.0.0.1:1", "Up", true, 2, "ftp://10.1.1.1:5080"),
             new("n2", "akka.tcp://fabric@127.0.0.1:2", "Up", true, 2, "http://10.9.8.7:5080"),
             new("n3", "akka.tcp://fabric@127.0.0.1:3", "Up", true, 2, null)]);
        using var gateways = new GatewaySet([server.Url]) { Note = _ => { } };

        await gateways.LearnAsync(TimeSpan.FromSeconds(20), CancellationToken.None);

        Assert.True(gateways.Learned);
        Assert.Equal(3, asked);
        Assert.Equal([server.Url, "http://10.9.8.7:5080"], gateways.Urls);
    }

    [Fact]
    public async Task Learning_with_no_patience_from_a_busy_gateway_adds_nothing_and_says_it_has_not_learned()
    {
        var asked = 0;
        await using var server = await NodesServer(() => { Interlocked.Increment(ref asked); return null; });
        using var gateways = new GatewaySet([server.Url]) { Note = _ => { } };

        await gateways.LearnAsync(TimeSpan.Zero, CancellationToken.None);

        Assert.False(gateways.Learned);
        Assert.Equal(1, asked);
        Assert.Equal([server.Url], gateways.Urls);
    }

    /// <summary>A gateway whose <c>/nodes</c> answers the list given, or 503 (busy) for null.</summary>
    private static Task<ScriptedGateway> NodesServer(Func<NodeStatus[]?> nodes) => ScriptedGateway.StartAsync(app =>
        app.MapGet("/nodes", () => nodes() is { } list
            ? Results.Json(new NodeList("n1", [.. list], []), HttpGateway.Json)
            : ScriptedGateway.Problem("EBUSY", "the node is busy", 503)));
}
