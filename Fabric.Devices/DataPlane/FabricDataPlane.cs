using System.Net;
using Fabric.Core.Security;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// A node's data plane: the TCP endpoint that serves its exports to other nodes, and the client its devices use to
/// reach other nodes' exports. Bulk bytes go here, not through Akka remoting, whose messages are limited in size and
/// would hold up the control traffic between two nodes. The endpoint travels in cluster messages (an attach answer
/// carries it), so nothing is configured by hand. With the cluster's certificates (<see cref="ClusterTls"/>) both the
/// endpoint and the client speak TLS with mutual authentication: a process without a certificate the cluster's CA
/// signed and did not revoke can neither read nor write an export, as it can neither join nor send to an actor.
/// </summary>
public sealed class FabricDataPlane : IAsyncDisposable
{
    private readonly DataPlaneServer _server;

    private FabricDataPlane(DataPlaneServer server, string advertisedHost, ClusterTls? tls)
    {
        _server = server;
        Client = new DataPlaneClient(tls);
        Secure = tls is not null;
        Endpoint = $"{advertisedHost}:{server.Port}";
    }

    /// <summary>
    /// Listens on <paramref name="bindHost"/>:<paramref name="port"/> (0: any free port), advertised as
    /// <paramref name="advertisedHost"/>; with <paramref name="tls"/>, serves and connects over TLS only.
    /// </summary>
    public static FabricDataPlane Start(string bindHost = "127.0.0.1", int port = 0, string? advertisedHost = null, ClusterTls? tls = null)
    {
        var bind = IPAddress.TryParse(bindHost, out var address) ? address : Dns.GetHostAddresses(bindHost)[0];
        var exports = new ExportTable();
        return new FabricDataPlane(new DataPlaneServer(bind, port, exports, tls), advertisedHost ?? bindHost, tls) { Exports = exports };
    }

    /// <summary>Whether this data plane speaks TLS.</summary>
    public bool Secure { get; }

    /// <summary><c>host:port</c> other nodes reach this node's exports at.</summary>
    public string Endpoint { get; }

    /// <summary>The port the endpoint listens on (the one the system chose, when started with port 0).</summary>
    public int Port => _server.Port;

    internal ExportTable Exports { get; private init; } = new();
    internal DataPlaneClient Client { get; }

    /// <summary>
    /// The baseline of <c>fabric bench p2p</c>: pulls <paramref name="bytes"/> from another node's data plane, over raw
    /// TCP, or raw TLS when this data plane has certificates.
    /// </summary>
    public Task PullRawAsync(string endpoint, long bytes, CancellationToken cancel) => Client.SourceAsync(endpoint, bytes, cancel);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _server.DisposeAsync();
    }
}
