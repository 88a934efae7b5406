using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using Fabric.Core;
using Fabric.Core.Security;
using Fabric.Core.Telemetry;
using static Fabric.Devices.DataPlane.DataPlaneProtocol;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// Moves bytes between this node's memory and another node's export, over that node's data plane, inside TLS when
/// this node has the cluster's certificates (<see cref="DataPlaneTls"/>). Connections are kept per endpoint for reuse
/// (a pooled TLS connection is reused as it is, without a new handshake); a failed one is dropped. Every failure is a
/// <see cref="FabricException"/>: the exporter's own refusal with its code (EIO for a revoked export, EPERM for a bad
/// key or a read-only export), a handshake that fails on a certificate EPERM, a broken connection ENODEV naming the
/// exporting node.
/// </summary>
internal sealed class DataPlaneClient(ClusterTls? tls = null) : IDisposable
{
    private const int IdlePerEndpoint = 8;
    private readonly ConcurrentDictionary<string, ConcurrentQueue<Connection>> _idle = new();

    /// <summary>A connection: the socket (to see whether a pooled one is still up) and the stream the bytes go through.</summary>
    private sealed class Connection(Socket socket, Stream stream, bool secure) : IDisposable
    {
        public Socket Socket { get; } = socket;
        public Stream Stream { get; } = stream;
        public bool Secure { get; } = secure;

        /// <summary>Nothing has come back on it yet: a close now is the peer refusing the connection, not a transfer breaking off.</summary>
        public bool Fresh { get; set; } = true;

        public void Dispose() => Stream.Dispose(); // the stream owns the socket
    }

    /// <summary>Reads [offset, offset+length) of the remote export into <paramref name="destination"/>.</summary>
    public Task ReadAsync(RemoteMemory remote, long offset, long length, Func<long, int, Memory<byte>> destination, CancellationToken cancel) =>
        TransferAsync(remote, new Request(Op.Read, remote.Export.Device.Index, remote.Export.Value, remote.Attachment, remote.Key, offset, length),
            async (connection, scratch) =>
            {
                var stream = connection.Stream;
                long at = 0;
                while (true)
                {
                    var (chunk, error) = await ReceiveChunkHeaderAsync(stream, scratch, cancel);
                    connection.Fresh = false;
                    if (error is not null) throw new FabricException(error);
                    if (chunk == 0) break;
                    if (chunk < 0 || at + chunk > length) throw new IOException($"the exporter sent {at + chunk} bytes of {length}");
                    await ReceiveExactlyAsync(stream, destination(at, chunk), cancel);
                    at += chunk;
                }
                if (at != length) throw new IOException($"the exporter sent {at} bytes of {length}");
            }, cancel);

    /// <summary>Writes <paramref name="length"/> bytes from <paramref name="source"/> into the remote export at <paramref name="offset"/>.</summary>
    public Task WriteAsync(RemoteMemory remote, long offset, long length, Func<long, int, ReadOnlyMemory<byte>> source, CancellationToken cancel) =>
        TransferAsync(remote, new Request(Op.Write, remote.Export.Device.Index, remote.Export.Value, remote.Attachment, remote.Key, offset, length),
            async (connection, scratch) =>
            {
                var stream = connection.Stream;
                for (long at = 0; at < length; at += ChunkBytes)
                {
                    var chunk = (int)Math.Min(ChunkBytes, length - at);
                    await SendChunkHeaderAsync(stream, chunk, 0, cancel);
                    await SendAllAsync(stream, source(at, chunk), cancel);
                }
                await SendChunkHeaderAsync(stream, 0, 0, cancel);
                var (_, error) = await ReceiveChunkHeaderAsync(stream, scratch, cancel);
                connection.Fresh = false;
                if (error is not null) throw new FabricException(error);
            }, cancel);

    /// <summary>
    /// The baseline of the benchmark: <paramref name="length"/> bytes from the endpoint, same framing and chunk size,
    /// into one scratch buffer — raw TCP, or raw TLS when this client has certificates.
    /// </summary>
    public async Task SourceAsync(string endpoint, long length, CancellationToken cancel)
    {
        var sink = new byte[ChunkBytes];
        var request = new Request(Op.Source, 0, 0, 0, new byte[KeyBytes], 0, length);
        var connection = await ConnectAsync(endpoint, $"the data plane at {endpoint}", cancel);
        try
        {
            var scratch = new byte[RequestBytes];
            request.WriteTo(scratch);
            await SendAllAsync(connection.Stream, scratch.AsMemory(0, RequestBytes), cancel);
            while (true)
            {
                var (chunk, error) = await ReceiveChunkHeaderAsync(connection.Stream, scratch, cancel);
                if (error is not null) throw new FabricException(error);
                if (chunk == 0) break;
                await ReceiveExactlyAsync(connection.Stream, sink.AsMemory(0, chunk), cancel);
            }
        }
        catch
        {
            connection.Dispose();
            throw;
        }
        Return(endpoint, connection);
    }

    private async Task TransferAsync(RemoteMemory remote, Request request, Func<Connection, byte[], Task> body, CancellationToken cancel)
    {
        var who = $"the data plane of node {remote.Export.Device.Node} at {remote.Endpoint}";
        Connection connection;
        try { connection = await ConnectAsync(remote.Endpoint, who, cancel); }
        catch (SocketException e)
        {
            throw new FabricException(new FabricError(ErrorCode.ENODEV, $"{who} cannot be reached for {remote.Export}: {e.Message}"));
        }
        var scratch = new byte[RequestBytes];
        var started = Stopwatch.GetTimestamp();
        try
        {
            request.WriteTo(scratch);
            await SendAllAsync(connection.Stream, scratch.AsMemory(0, RequestBytes), cancel);
            await body(connection, scratch);
            Return(remote.Endpoint, connection);
            TagList tags = new() { { "direction", request.Op == Op.Read ? "read" : "write" }, { "peer", remote.Export.Device.Node } };
            FabricMetrics.DataPlaneBytes.Add(request.Length, tags);
            FabricMetrics.DataPlaneTransfer.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
        }
        catch (FabricException)
        {
            connection.Dispose(); // the exporter ended the transfer; the stream may be mid-chunk
            throw;
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException or AuthenticationException)
        {
            connection.Dispose();
            if (connection.Fresh && await PortRefusesAsync(remote.Endpoint))
                throw new FabricException(new FabricError(ErrorCode.ENODEV,
                    $"{who} closed the connection before it answered and its port now refuses connections: the node's process is gone ({Reason(e)})"));
            throw new FabricException(connection.Fresh ? Refused(who, connection.Secure, e) : new FabricError(ErrorCode.ENODEV,
                $"the transfer of {remote.Export} from node {remote.Export.Device.Node} ({remote.Endpoint}) broke off: {e.Message}"));
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Whether nothing listens at <paramref name="endpoint"/> any more. A new connection closed before any answer is
    /// either the exporter refusing this node (alive: its port accepts) or the exporter's process dying under it (its
    /// listening socket closed with it): only the first is a refusal.
    /// </summary>
    private static Task<bool> PortRefusesAsync(string endpoint)
    {
        var (host, port) = Split(endpoint);
        return Fabric.Core.Client.PortProbe.RefusesAsync(host, port);
    }

    /// <summary>A data-plane endpoint's host and port (<c>host:port</c>, as the exporter advertised it).</summary>
    private static (string Host, int Port) Split(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        return (endpoint[..colon], int.Parse(endpoint[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// A new connection that the exporter closed before it answered anything. Over TLS 1.3 the server checks this
    /// node's certificate after the client has finished its handshake, so its refusal arrives here, at the first read,
    /// as the connection closing.
    /// </summary>
    private static FabricError Refused(string who, bool secure, Exception e)
    {
        var detail = e is EndOfStreamException ? "" : $" ({Reason(e)})";
        return secure
            ? new FabricError(ErrorCode.EPERM, $"{who} refused this node's certificate: it closed the new TLS connection before it answered{detail}")
            : new FabricError(ErrorCode.ENODEV,
                $"{who} closed the connection before it answered: it may require TLS (--tls-cert, --tls-key, --tls-ca), which this node has not{detail}");
    }

    /// <summary>
    /// A client handshake that failed without this node refusing the server's certificate. An error of the TLS library
    /// (an inner exception: an alert the server sent, as TLS 1.2 does on a certificate it refuses) is the server
    /// refusing this node; bytes that are not TLS at all (no inner exception) are a server without TLS.
    /// </summary>
    private static FabricError HandshakeFailed(string who, Exception e) => e switch
    {
        OperationCanceledException => new FabricError(ErrorCode.ENODEV, $"{who} did not complete a TLS handshake within {DataPlaneTls.HandshakeTimeout.TotalSeconds:0} s"),
        AuthenticationException { InnerException: not null } => new FabricError(ErrorCode.EPERM,
            $"the TLS handshake with {who} failed: it refused this node's certificate ({Reason(e)})"),
        _ => new FabricError(ErrorCode.ENODEV,
            $"{who} does not answer in TLS: it may run without TLS (no --tls-cert) while this node has it ({Reason(e)})"),
    };

    private static string Reason(Exception e) => e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message;

    /// <summary>
    /// Whether a pooled connection can carry a request: connected, and not closed by the exporter meanwhile (a server
    /// closes a connection idle past its idle timeout, or when its node restarts). An idle connection that polls readable
    /// with nothing to read has seen the peer's FIN.
    /// </summary>
    private static bool StillOpen(Socket socket)
    {
        try { return socket.Connected && !(socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { return false; }
    }

    private async Task<Connection> ConnectAsync(string endpoint, string who, CancellationToken cancel)
    {
        if (_idle.TryGetValue(endpoint, out var idle))
            while (idle.TryDequeue(out var pooled))
                if (StillOpen(pooled.Socket)) return pooled;
                else pooled.Dispose();
        var (host, port) = Split(endpoint);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            socket.Dispose();
            throw new SocketException((int)SocketError.TimedOut);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var plain = new NetworkStream(socket, ownsSocket: true);
        if (tls is null) return new Connection(socket, plain, secure: false);
        var secure = new SslStream(plain, leaveInnerStreamOpen: false);
        var refusal = new StrongBox<string?>();
        timeout.CancelAfter(DataPlaneTls.HandshakeTimeout);
        try
        {
            await secure.AuthenticateAsClientAsync(DataPlaneTls.ClientOptions(tls, host, refusal), timeout.Token);
            return new Connection(socket, secure, secure: true);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException && !cancel.IsCancellationRequested)
        {
            await secure.DisposeAsync();
            if (refusal.Value is null && await PortRefusesAsync(endpoint))
                throw new FabricException(new FabricError(ErrorCode.ENODEV,
                    $"{who} closed the connection during the TLS handshake and its port now refuses connections: the node's process is gone ({Reason(e)})"));
            throw new FabricException(refusal.Value is { } why
                ? new FabricError(ErrorCode.EPERM, $"{who} presented a certificate this node does not trust: {why}")
                : HandshakeFailed(who, e));
        }
        catch
        {
            await secure.DisposeAsync();
            throw;
        }
    }

    private void Return(string endpoint, Connection connection)
    {
        var idle = _idle.GetOrAdd(endpoint, _ => new ConcurrentQueue<Connection>());
        if (idle.Count < IdlePerEndpoint) idle.Enqueue(connection);
        else connection.Dispose();
    }

    public void Dispose()
    {
        foreach (var queue in _idle.Values)
            while (queue.TryDequeue(out var connection)) connection.Dispose();
    }
}
