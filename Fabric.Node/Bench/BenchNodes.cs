using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Security;
using Fabric.Node.Hosting;
using Fabric.Node.Security;

namespace Fabric.Node.Bench;

/// <summary>
/// A <see cref="LocalCluster"/> a benchmark starts and ends, and a client process's connection to its first node.
/// With TLS, the cluster's CA for this run issues every node's certificate and the client's: remoting and data plane
/// then speak TLS with mutual authentication, as a cluster with certificates does; without, plain TCP (--insecure).
/// </summary>
public sealed class BenchNodes : IAsyncDisposable
{
    private BenchNodes(ActorSystem system, LocalCluster cluster)
    {
        System = system;
        Cluster = cluster;
    }

    public ActorSystem System { get; }
    public LocalCluster Cluster { get; }
    public FabricClient Client { get; private set; } = null!;

    /// <summary>The node names: <c>prefix1</c>, <c>prefix2</c>, …</summary>
    public IReadOnlyList<string> Names => [.. Cluster.Nodes.Select(n => n.Name)];

    /// <summary>Starts <paramref name="count"/> nodes with <paramref name="devicesPerNode"/> devices each, and connects (over TLS with <paramref name="tls"/>).</summary>
    public static async Task<BenchNodes> StartAsync(string prefix, int count, string deviceMemory, Action<string> progress, CancellationToken cancel,
        int devicesPerNode = 1, bool tls = false)
    {
        var cluster = await LocalCluster.StartAsync(new LocalCluster.Options
        {
            Nodes = count,
            NamePrefix = prefix,
            DevicesPerNode = devicesPerNode,
            DeviceMemory = deviceMemory,
            OnNodeError = (node, line) => Console.Error.WriteLine($"[{node}] {line}"),
            Insecure = !tls,
        }, progress, cancel);
        BenchNodes nodes;
        try { nodes = new BenchNodes(FabricClientSystem.Create(tls: cluster.ClientTls), cluster); }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
        try
        {
            nodes.Client = await FabricClient.ConnectAsync(nodes.System, nodes.Endpoint(0), new FabricClientOptions { RequestTimeout = TimeSpan.FromSeconds(60) }, cancel);
            return nodes;
        }
        catch
        {
            await nodes.DisposeAsync();
            throw;
        }
    }

    public string Endpoint(int index) => Cluster.Nodes[index].Endpoint;
    public string Gateway(int index) => Cluster.Nodes[index].Gateway;

    public Task<IActorRef> ResolveAsync(int node, string actor, CancellationToken cancel) =>
        System.ActorSelection($"{Cluster.Nodes[node].Address}/user/{actor}").ResolveOne(TimeSpan.FromSeconds(10), cancel);

    public async ValueTask DisposeAsync()
    {
        if (Client is not null) await Client.DisposeAsync();
        await System.Terminate();
        await Cluster.DisposeAsync();
    }
}
