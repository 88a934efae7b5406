using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Security;
using Fabric.Node.Hosting;
using Fabric.Node.Security;

namespace Fabric.Node.Bench;

/// <summary>
/// A <see cref="LocalCluster"/> a benchmark starts and ends, and a client process's connection to its first node.
/// With TLS, a CA made for this run alone (in a directory deleted at the end) issues every node's certificate and the
/// client's: remoting and data plane then speak TLS with mutual authentication, as a cluster with certificates does.
/// </summary>
public sealed class BenchNodes : IAsyncDisposable
{
    private readonly string? _certificates;

    private BenchNodes(ActorSystem system, LocalCluster cluster, string? certificates)
    {
        System = system;
        Cluster = cluster;
        _certificates = certificates;
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
        var certificates = tls ? Path.Combine(Path.GetTempPath(), $"fabric-bench-ca-{Guid.NewGuid():N}"[..28]) : null;
        ClusterTls? clientTls = null;
        LocalCluster cluster;
        try
        {
            if (certificates is not null)
            {
                progress($"TLS: a CA for this run in {certificates}, a certificate for each node and for the client");
                ClusterCertificates.InitAuthority(certificates, $"bench-{prefix}").Dispose();
                foreach (var i in Enumerable.Range(1, count)) ClusterCertificates.Issue(certificates, $"{prefix}{i}", [], []).Dispose();
                ClusterCertificates.Issue(certificates, "bench-client", [], []).Dispose();
                clientTls = ClusterCertificates.LoadTls(certificates, "bench-client");
            }
            cluster = await LocalCluster.StartAsync(new LocalCluster.Options
            {
                Nodes = count,
                NamePrefix = prefix,
                DevicesPerNode = devicesPerNode,
                DeviceMemory = deviceMemory,
                OnNodeError = (node, line) => Console.Error.WriteLine($"[{node}] {line}"),
                NodeArguments = certificates is null ? null : name => ClusterCertificates.TlsArguments(certificates, name),
            }, progress, cancel);
        }
        catch
        {
            DeleteCertificates(certificates);
            throw;
        }
        var nodes = new BenchNodes(FabricClientSystem.Create(tls: clientTls), cluster, certificates);
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
        DeleteCertificates(_certificates);
    }

    private static void DeleteCertificates(string? directory)
    {
        if (directory is not null && Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }
}
