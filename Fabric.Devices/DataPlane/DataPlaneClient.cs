using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using Fabric.Core;
using Fabric.Core.Telemetry;
using static Fabric.Devices.DataPlane.DataPlaneProtocol;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// Moves bytes between this node's memory and another node's export, over that node's data plane. Connections are
/// kept per endpoint for reuse; a failed one is dropped. Every failure is a <see cref="FabricException"/>: the
/// exporter's own refusal with its code (EIO for a revoked export, EPERM for a bad key or a read-only export), a
/// broken connection ENODEV naming the exporting node.
/// </summary>
internal sealed class DataPlaneClient : IDisposable
{
    private const int IdlePerEndpoint = 8;
    private readonly ConcurrentDictionary<string, ConcurrentQueue<Socket>> _idle = new();

    /// <summary>Reads [offset, offset+length) of the remote export into <paramref name="destination"/>.</summary>
    public Task ReadAsync(RemoteMemory remote, long offset, long length, Func<long, int, Memory<byte>> destination, CancellationToken cancel) =>
        TransferAsync(remote, new Request(Op.Read, remote.Export.Device.Index, remote.Export.Value, remote.Attachment, remote.Key, offset, length),
            async (socket, scratch) =>
            {
                long at = 0;
                while (true)
                {
                    var (chunk, error) = await ReceiveChunkHeaderAsync(socket, scratch, cancel);
                    if (error is not null) throw new FabricException(error);
                    if (chunk == 0) break;
                    if (chunk < 0 || at + chunk > length) throw new IOException($"the exporter sent {at + chunk} bytes of {length}");
                    await ReceiveExactlyAsync(socket, destination(at, chunk), cancel);
                    at += chunk;
                }
                if (at != length) throw new IOException($"the exporter sent {at} bytes of {length}");
            }, cancel);

    /// <summary>Writes <paramref name="length"/> bytes from <paramref name="source"/> into the remote export at <paramref name="offset"/>.</summary>
    public Task WriteAsync(RemoteMemory remote, long offset, long length, Func<long, int, ReadOnlyMemory<byte>> source, CancellationToken cancel) =>
        TransferAsync(remote, new Request(Op.Write, remote.Export.Device.Index, remote.Export.Value, remote.Attachment, remote.Key, offset, length),
            async (socket, scratch) =>
            {
                for (long at = 0; at < length; at += ChunkBytes)
                {
                    var chunk = (int)Math.Min(ChunkBytes, length - at);
                    await SendChunkHeaderAsync(socket, chunk, 0, cancel);
                    await SendAllAsync(socket, source(at, chunk), cancel);
                }
                await SendChunkHeaderAsync(socket, 0, 0, cancel);
                var (_, error) = await ReceiveChunkHeaderAsync(socket, scratch, cancel);
                if (error is not null) throw new FabricException(error);
            }, cancel);

    /// <summary>The raw-TCP baseline: <paramref name="length"/> bytes from the endpoint, same framing and chunk size, into one scratch buffer.</summary>
    public async Task SourceAsync(string endpoint, long length, CancellationToken cancel)
    {
        var sink = new byte[ChunkBytes];
        var request = new Request(Op.Source, 0, 0, 0, new byte[KeyBytes], 0, length);
        var socket = await ConnectAsync(endpoint, cancel);
        var scratch = new byte[RequestBytes];
        request.WriteTo(scratch);
        await SendAllAsync(socket, scratch.AsMemory(0, RequestBytes), cancel);
        while (true)
        {
            var (chunk, error) = await ReceiveChunkHeaderAsync(socket, scratch, cancel);
            if (error is not null) throw new FabricException(error);
            if (chunk == 0) break;
            await ReceiveExactlyAsync(socket, sink.AsMemory(0, chunk), cancel);
        }
        Return(endpoint, socket);
    }

    private async Task TransferAsync(RemoteMemory remote, Request request, Func<Socket, byte[], Task> body, CancellationToken cancel)
    {
        Socket socket;
        try { socket = await ConnectAsync(remote.Endpoint, cancel); }
        catch (SocketException e)
        {
            throw new FabricException(new FabricError(ErrorCode.ENODEV,
                $"the data plane of node {remote.Export.Device.Node} at {remote.Endpoint} cannot be reached for {remote.Export}: {e.Message}"));
        }
        var scratch = new byte[RequestBytes];
        var started = Stopwatch.GetTimestamp();
        try
        {
            request.WriteTo(scratch);
            await SendAllAsync(socket, scratch.AsMemory(0, RequestBytes), cancel);
            await body(socket, scratch);
            Return(remote.Endpoint, socket);
            TagList tags = new() { { "direction", request.Op == Op.Read ? "read" : "write" }, { "peer", remote.Export.Device.Node } };
            FabricMetrics.DataPlaneBytes.Add(request.Length, tags);
            FabricMetrics.DataPlaneTransfer.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
        }
        catch (FabricException)
        {
            socket.Dispose(); // the exporter ended the transfer; the stream may be mid-chunk
            throw;
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            socket.Dispose();
            throw new FabricException(new FabricError(ErrorCode.ENODEV,
                $"the transfer of {remote.Export} from node {remote.Export.Device.Node} ({remote.Endpoint}) broke off: {e.Message}"));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task<Socket> ConnectAsync(string endpoint, CancellationToken cancel)
    {
        if (_idle.TryGetValue(endpoint, out var idle))
            while (idle.TryDequeue(out var pooled))
                if (pooled.Connected) return pooled;
                else pooled.Dispose();
        var colon = endpoint.LastIndexOf(':');
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await socket.ConnectAsync(endpoint[..colon], int.Parse(endpoint[(colon + 1)..]), timeout.Token);
            return socket;
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
    }

    private void Return(string endpoint, Socket socket)
    {
        var idle = _idle.GetOrAdd(endpoint, _ => new ConcurrentQueue<Socket>());
        if (idle.Count < IdlePerEndpoint) idle.Enqueue(socket);
        else socket.Dispose();
    }

    public void Dispose()
    {
        foreach (var queue in _idle.Values)
            while (queue.TryDequeue(out var socket)) socket.Dispose();
    }
}
