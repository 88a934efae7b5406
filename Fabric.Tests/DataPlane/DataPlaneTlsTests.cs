using Fabric.Core;
using Fabric.Core.Security;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Memory;
using Fabric.Node.Security;
using Xunit.Abstractions;

namespace Fabric.Tests.DataPlane;

/// <summary>
/// The data plane over TLS with the cluster's certificates, two data planes in one process over loopback: what a
/// member reads and writes, and how a process without the right certificate — or without TLS at all — is refused.
/// </summary>
public sealed class DataPlaneTlsTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20); // no case may hang: a refusal comes quickly
    private static readonly DeviceId Device = new("n2", 0);
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-dptls-{Guid.NewGuid():N}");
    private readonly DeviceMemory _memory = new(8L << 20, 256);
    private readonly List<FabricDataPlane> _planes = [];
    private MemoryBlock _block = null!;
    private ClusterTls _n1 = null!, _n2 = null!, _revoked = null!, _stranger = null!, _strangerTrustingUs = null!;

    private string Ca => Path.Combine(_root, "ca");
    private string OtherCa => Path.Combine(_root, "other");

    public Task InitializeAsync()
    {
        ClusterCertificates.InitAuthority(Ca, "test").Dispose();
        ClusterCertificates.InitAuthority(OtherCa, "other").Dispose();
        foreach (var name in new[] { "n1", "n2", "n3" }) ClusterCertificates.Issue(Ca, name, [], []).Dispose();
        ClusterCertificates.Issue(OtherCa, "stranger", [], []).Dispose();
        _revoked = Load(Ca, "n3"); // loaded while still good: the revoke below is what the others learn
        ClusterCertificates.Revoke(Ca, "n3");
        (_n1, _n2, _stranger) = (Load(Ca, "n1"), Load(Ca, "n2"), Load(OtherCa, "stranger"));
        _strangerTrustingUs = new ClusterTls(_stranger.Identity, _n1.Trust); // it accepts our server, our server not it
        _block = _memory.TryAllocate(4L << 20, 4096)!;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var plane in _planes) await plane.DisposeAsync();
        _block.Release();
        _memory.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    private static ClusterTls Load(string ca, string name) => ClusterCertificates.LoadTls(ca, name);

    private FabricDataPlane Start(ClusterTls? tls)
    {
        var plane = FabricDataPlane.Start(tls: tls);
        _planes.Add(plane);
        return plane;
    }

    private RemoteMemory Serve(FabricDataPlane server)
    {
        var id = new ExportId(Device, 1);
        var entry = server.Exports.Register(id, _block, _block.Size, Access.ReadWrite);
        byte[] key = [.. Enumerable.Range(1, 16).Select(i => (byte)(i * 7))];
        entry.Attachments[7] = key;
        return new RemoteMemory(id, server.Endpoint, 7, key, _block.Size, Access.ReadWrite);
    }

    private static async Task<byte[]> ReadAsync(FabricDataPlane client, RemoteMemory remote, long offset, int length)
    {
        var bytes = new byte[length];
        await client.Client.ReadAsync(remote, offset, length, (at, chunk) => bytes.AsMemory((int)at, chunk), CancellationToken.None).WaitAsync(Bound);
        return bytes;
    }

    private async Task<FabricException> RefusedAsync(FabricDataPlane client, RemoteMemory remote)
    {
        var error = await Assert.ThrowsAsync<FabricException>(() => ReadAsync(client, remote, 0, 16));
        output.WriteLine($"{error.Code}: {error.Error.Message}");
        return error;
    }

    private unsafe byte[] Contents(long offset, int length) => new Span<byte>(_block.Pointer + offset, length).ToArray();

    [Fact]
    public async Task Members_of_one_CA_write_and_read_byte_exact_ranges_across_chunks_over_TLS()
    {
        var server = Start(_n2);
        var client = Start(_n1);
        var remote = Serve(server);
        var payload = Enumerable.Range(0, (1 << 20) + 4099).Select(i => (byte)(i * 31 + 5)).ToArray();

        await client.Client.WriteAsync(remote, 3, payload.Length, (at, chunk) => payload.AsMemory((int)at, chunk), CancellationToken.None).WaitAsync(Bound);
        var back = await ReadAsync(client, remote, 3, payload.Length);
        var again = await ReadAsync(client, remote, 3 + 1000, 5000); // over the pooled TLS connection

        Assert.True(server.Secure && client.Secure);
        Assert.Equal(payload, Contents(3, payload.Length)); // what the server's memory holds
        Assert.Equal(payload, back);
        Assert.Equal(payload.AsSpan(1000, 5000).ToArray(), again);
        // No transfer holds a pin once done: the server releases it just after it sends the last chunk, which the
        // client may have read already.
        var released = System.Diagnostics.Stopwatch.StartNew();
        while (_block.References != 1 && released.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        Assert.Equal(1, _block.References);
    }

    [Fact]
    public async Task Another_CAs_certificate_and_a_revoked_one_are_EPERM_naming_the_node_and_the_server_serves_on()
    {
        var server = Start(_n2);
        var remote = Serve(server);
        Assert.Equal(Contents(0, 16), await ReadAsync(Start(_n1), remote, 0, 16)); // a member first: the server is up

        var stranger = await RefusedAsync(Start(_stranger), remote); // it trusts neither the server nor is trusted
        var refusedByServer = await RefusedAsync(Start(_strangerTrustingUs), remote);
        var revoked = await RefusedAsync(Start(_revoked), remote);

        Assert.Equal((ErrorCode.EPERM, ErrorCode.EPERM, ErrorCode.EPERM), (stranger.Code, refusedByServer.Code, revoked.Code));
        foreach (var error in new[] { stranger, refusedByServer, revoked })
            Assert.Contains($"node n2 at {server.Endpoint}", error.Error.Message);
        Assert.Contains("does not trust", stranger.Error.Message); // the client's own verdict on the server's certificate
        Assert.Contains("not signed by the cluster's CA", stranger.Error.Message);
        Assert.Contains("refused this node's certificate", refusedByServer.Error.Message);
        Assert.Contains("refused this node's certificate", revoked.Error.Message);

        var payload = Enumerable.Range(0, 64).Select(i => (byte)(i + 1)).ToArray();
        var member = Start(_n1);
        await member.Client.WriteAsync(remote, 100, payload.Length, (at, chunk) => payload.AsMemory((int)at, chunk), CancellationToken.None).WaitAsync(Bound);
        Assert.Equal(payload, await ReadAsync(member, remote, 100, payload.Length));
    }

    [Fact]
    public async Task An_exporter_whose_process_dies_under_a_new_TLS_connection_is_ENODEV_not_a_refusal_of_the_certificate()
    {
        // The exporter's process dies as the importer connects: the connection is reset and the port closes with it.
        using var dying = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        dying.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        dying.Listen(1);
        var port = ((System.Net.IPEndPoint)dying.LocalEndPoint!).Port;
        var dies = Task.Run(async () =>
        {
            using var accepted = await dying.AcceptAsync();
            // A member's certificate and a finished handshake: then, before it answers, the process is gone.
            await using var tls = new System.Net.Security.SslStream(new System.Net.Sockets.NetworkStream(accepted), leaveInnerStreamOpen: true);
            await tls.AuthenticateAsServerAsync(DataPlaneTls.ServerOptions(_n2));
            dying.Close(); // nothing listens any more
            accepted.LingerState = new System.Net.Sockets.LingerOption(true, 0); // a reset, as a killed process's socket
            accepted.Close();
        });
        var id = new ExportId(Device, 1);
        var remote = new RemoteMemory(id, $"127.0.0.1:{port}", 7, new byte[16], 4096, Access.ReadWrite);

        var error = await RefusedAsync(Start(_n1), remote);
        await dies;

        Assert.Equal(ErrorCode.ENODEV, error.Code);
        Assert.Contains($"127.0.0.1:{port}", error.Error.Message);
        Assert.Contains("the node's process is gone", error.Error.Message);
    }

    [Fact]
    public async Task A_plain_client_of_a_TLS_server_is_refused_with_ENODEV_and_the_server_serves_on()
    {
        var server = Start(_n2);
        var remote = Serve(server);

        var plain = await RefusedAsync(Start(null), remote);

        Assert.Equal(ErrorCode.ENODEV, plain.Code);
        Assert.Contains($"node n2 at {server.Endpoint}", plain.Error.Message);
        Assert.Contains("may require TLS", plain.Error.Message);
        var payload = Enumerable.Range(0, 32).Select(i => (byte)(255 - i)).ToArray();
        var member = Start(_n1);
        await member.Client.WriteAsync(remote, 0, payload.Length, (at, chunk) => payload.AsMemory((int)at, chunk), CancellationToken.None).WaitAsync(Bound);
        Assert.Equal(payload, await ReadAsync(member, remote, 0, payload.Length));
    }

    [Fact]
    public async Task A_TLS_client_of_a_plain_server_fails_with_an_error_not_a_hang()
    {
        var server = Start(null);
        var remote = Serve(server);

        var error = await RefusedAsync(Start(_n1), remote);

        Assert.Equal(ErrorCode.ENODEV, error.Code);
        Assert.Contains($"node n2 at {server.Endpoint}", error.Error.Message);
        Assert.Contains("TLS", error.Error.Message);
        Assert.Equal(Contents(0, 16), await ReadAsync(Start(null), remote, 0, 16)); // a plain client still reads it
    }
}
