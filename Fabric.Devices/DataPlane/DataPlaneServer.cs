using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Fabric.Core;
using Fabric.Core.Security;
using static Fabric.Devices.DataPlane.DataPlaneProtocol;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// Serves the node's exports to importers on other nodes over TCP, inside TLS with mutual authentication when the
/// node has the cluster's certificates (<see cref="DataPlaneTls"/>): a connection whose peer presents no certificate,
/// another CA's or a revoked one is closed after the handshake fails, before it can send a request. Bytes go from the
/// arena to the stream and from the stream to the arena directly, one chunk at a time: TCP's own flow control is the
/// back-pressure, and the only memory a transfer holds is its pin on the block. A revoke or release is seen at the
/// next chunk.
/// </summary>
internal sealed class DataPlaneServer : IAsyncDisposable
{
    private static readonly byte[] Nothing = new byte[ChunkBytes];
    private readonly Socket _listener;
    private readonly ExportTable _exports;
    private readonly ClusterTls? _tls;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public DataPlaneServer(IPAddress bind, int port, ExportTable exports, ClusterTls? tls = null)
    {
        (_exports, _tls) = (exports, tls);
        _listener = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(bind, port));
        _listener.Listen(128);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _accepting = Task.Run(AcceptAsync);
    }

    public int Port { get; }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket connection;
            try { connection = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
            connection.NoDelay = true;
            _ = Task.Run(() => ServeAsync(connection));
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        var header = new byte[RequestBytes];
        var cancel = _stop.Token;
        Stream connection = new NetworkStream(socket, ownsSocket: true);
        try
        {
            try
            {
                if (_tls is not null)
                {
                    var secure = new SslStream(connection, leaveInnerStreamOpen: false);
                    connection = secure;
                    using var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    handshake.CancelAfter(DataPlaneTls.HandshakeTimeout);
                    await secure.AuthenticateAsServerAsync(DataPlaneTls.ServerOptions(_tls), handshake.Token);
                }
                while (!cancel.IsCancellationRequested)
                {
                    try { await ReceiveExactlyAsync(connection, header, cancel); }
                    catch (EndOfStreamException) { return; } // the client is done with this connection
                    if (Request.Read(header) is not { } request)
                    {
                        await SendErrorAsync(connection, FabricError.Invalid("not a Fabric data-plane request"), cancel);
                        return;
                    }
                    var keepOpen = request.Op switch
                    {
                        Op.Read => await ServeReadAsync(connection, request, cancel),
                        Op.Write => await ServeWriteAsync(connection, request, cancel),
                        _ => await ServeSourceAsync(connection, request, cancel),
                    };
                    if (!keepOpen) return;
                }
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException or AuthenticationException)
            {
                // The importer went away, failed the TLS handshake, or the node is stopping: the transfer is over, its
                // pin already released.
            }
        }
        finally { await connection.DisposeAsync(); } // the SslStream, when there is one, closes what it wraps
    }

    /// <summary>Checks the request against the export; answers the error itself when it is refused.</summary>
    private async ValueTask<ExportTable.Entry?> AuthorizeAsync(Stream connection, Request request, bool write, CancellationToken cancel)
    {
        var (entry, error) = _exports.Authorize(request.Device, request.Export, request.Attachment, request.Key, write);
        if (entry is { } e && (request.Offset < 0 || request.Length < 0 || request.Offset > e.Size || request.Length > e.Size - request.Offset))
            (entry, error) = (null, FabricError.Invalid($"[{request.Offset}, +{request.Length}) is outside {e.Id} of {e.Size} bytes"));
        if (entry is { } live && !live.Block.TryAcquire())
            (entry, error) = (null, new FabricError(ErrorCode.EIO, $"the memory of {live.Id} is gone"));
        if (error is not null) await SendErrorAsync(connection, error, cancel);
        return entry;
    }

    private async ValueTask<bool> ServeReadAsync(Stream connection, Request request, CancellationToken cancel)
    {
        if (await AuthorizeAsync(connection, request, write: false, cancel) is not { } entry) return true;
        try
        {
            for (long at = 0; at < request.Length; at += ChunkBytes)
            {
                if (entry.Ended is { } ended)
                {
                    await SendErrorAsync(connection, ended, cancel);
                    return true;
                }
                var length = (int)Math.Min(ChunkBytes, request.Length - at);
                await SendChunkHeaderAsync(connection, length, 0, cancel);
                await SendAllAsync(connection, Window(entry, request.Offset + at, length), cancel);
            }
            await SendChunkHeaderAsync(connection, 0, 0, cancel);
            return true;
        }
        finally { entry.Block.Release(); }
    }

    private async ValueTask<bool> ServeWriteAsync(Stream connection, Request request, CancellationToken cancel)
    {
        var scratch = new byte[ChunkHeaderBytes];
        // A refused write's data is already on its way: it is read and dropped, so that the importer, which reads the
        // answer once it has sent everything, gets the refusal (closing now would reset the connection under it).
        if (await AuthorizeAsync(connection, request, write: true, cancel) is not { } entry)
            return await DrainAsync(connection, request.Length, scratch, cancel);
        try
        {
            long at = 0;
            while (true)
            {
                var (length, error) = await ReceiveChunkHeaderAsync(connection, scratch, cancel);
                if (error is not null) return false;
                if (length == 0) break;
                if (length < 0 || at + length > request.Length)
                {
                    await SendErrorAsync(connection, FabricError.Invalid($"the write to {entry.Id} sent more than the {request.Length} bytes it announced"), cancel);
                    return false;
                }
                if (entry.Ended is { } ended)
                {
                    await SendErrorAsync(connection, ended, cancel);
                    return false; // a revoked export takes no more: the importer learns it at once
                }
                await ReceiveExactlyAsync(connection, Window(entry, request.Offset + at, length), cancel);
                at += length;
            }
            if (at != request.Length)
                await SendErrorAsync(connection, FabricError.Invalid($"the write to {entry.Id} announced {request.Length} bytes and sent {at}"), cancel);
            else if (entry.Ended is { } ended)
                await SendErrorAsync(connection, ended, cancel);
            else
                await SendChunkHeaderAsync(connection, 0, 0, cancel);
            return true;
        }
        finally { entry.Block.Release(); }
    }

    /// <summary>
    /// Reads and drops a write the server has refused, up to its end header. Returns whether the connection can serve
    /// another request: not if the importer sends more than it announced or breaks the framing.
    /// </summary>
    private static async ValueTask<bool> DrainAsync(Stream connection, long announced, byte[] scratch, CancellationToken cancel)
    {
        var sink = new byte[64 * 1024];
        for (long at = 0; ;)
        {
            var (length, error) = await ReceiveChunkHeaderAsync(connection, scratch, cancel);
            if (error is not null || length < 0 || at + length > announced) return false;
            if (length == 0) return true;
            for (var left = length; left > 0;)
            {
                var part = Math.Min(left, sink.Length);
                await ReceiveExactlyAsync(connection, sink.AsMemory(0, part), cancel);
                left -= part;
            }
            at += length;
        }
    }

    private static async ValueTask<bool> ServeSourceAsync(Stream connection, Request request, CancellationToken cancel)
    {
        for (long at = 0; at < request.Length; at += ChunkBytes)
        {
            var length = (int)Math.Min(ChunkBytes, request.Length - at);
            await SendChunkHeaderAsync(connection, length, 0, cancel);
            await SendAllAsync(connection, Nothing.AsMemory(0, length), cancel);
        }
        await SendChunkHeaderAsync(connection, 0, 0, cancel);
        return true;
    }

    private static unsafe Memory<byte> Window(ExportTable.Entry entry, long offset, int length) =>
        new NativeMemoryManager(entry.Block.Pointer + offset, length).Memory;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        try { await _accepting; }
        catch (OperationCanceledException) { }
    }
}
