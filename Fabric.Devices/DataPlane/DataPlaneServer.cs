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
/// <para>
/// A peer cannot hold a connection with a request it does not finish (slowloris). Between requests a connection may
/// stay idle for <see cref="DataPlaneLimits.IdleTimeout"/>: importers pool theirs for reuse. Once the first byte of a
/// request has arrived, the rest of its header must arrive within <see cref="DataPlaneLimits.RequestTimeout"/>, and
/// during the transfer every receive (each read of a chunk header or of data) and every send (a chunk header, or one
/// chunk of at most <see cref="ChunkBytes"/>) must complete within it too. Otherwise the connection is closed, and
/// the transfer's pin on the block released. The deadline is one token source per connection, linked to the server's
/// stop and re-armed (<c>CancelAfter</c>, which moves its one timer) around each receive and send: the deadline adds
/// no allocation per chunk.
/// </para>
/// <para>
/// At most <see cref="DataPlaneLimits.MaxConnections"/> connections are served at once. One more is accepted and
/// closed at once, before anything it sent is read: without TLS the server first writes one EBUSY error chunk ("the
/// data plane of 127.0.0.1:4100 serves 256 connections already"), which the importer reads as the answer to its
/// request; a TLS peer sees only the close, since nothing can be said to it before a handshake, and handshakes are
/// what the cap spares.
/// </para>
/// </summary>
internal sealed class DataPlaneServer : IAsyncDisposable
{
    private static readonly byte[] Nothing = new byte[ChunkBytes];
    private readonly Socket _listener;
    private readonly ExportTable _exports;
    private readonly ClusterTls? _tls;
    private readonly DataPlaneLimits _limits;
    private readonly byte[] _busy;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _serving;

    public DataPlaneServer(IPAddress bind, int port, ExportTable exports, ClusterTls? tls = null, DataPlaneLimits? limits = null)
    {
        (_exports, _tls, _limits) = (exports, tls, limits ?? DataPlaneLimits.Default);
        _limits.Validate();
        _listener = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(bind, port));
        _listener.Listen(128);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _busy = ErrorChunk(new FabricError(ErrorCode.EBUSY,
            $"the data plane of {_listener.LocalEndPoint} serves {_limits.MaxConnections} connections already"));
        _accepting = Task.Run(AcceptAsync);
    }

    public int Port { get; }

    /// <summary>The connections being served now (for tests: a refused one never counts).</summary>
    internal int Serving => Volatile.Read(ref _serving);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket connection;
            try { connection = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
            connection.NoDelay = true;
            if (Volatile.Read(ref _serving) >= _limits.MaxConnections) // only this loop adds: the count never passes the cap
            {
                Refuse(connection);
                continue;
            }
            Interlocked.Increment(ref _serving);
            _ = Task.Run(() => ServeAsync(connection));
        }
    }

    /// <summary>Closes a connection over the cap before reading anything of it; a plain-TCP peer is told why first.</summary>
    private void Refuse(Socket connection)
    {
        try
        {
            if (_tls is not null) return;
            connection.Blocking = false; // a new socket's send buffer is empty: the answer fits, the accept loop never waits
            connection.Send(_busy);
            connection.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException) { } // the peer is gone already
        finally { connection.Dispose(); }
    }

    private async Task ServeAsync(Socket socket)
    {
        var header = new byte[RequestBytes];
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        Stream connection = new NetworkStream(socket, ownsSocket: true);
        try
        {
            try
            {
                if (_tls is not null)
                {
                    var secure = new SslStream(connection, leaveInnerStreamOpen: false);
                    connection = secure;
                    deadline.CancelAfter(DataPlaneTls.HandshakeTimeout);
                    await secure.AuthenticateAsServerAsync(DataPlaneTls.ServerOptions(_tls), deadline.Token);
                }
                var peer = new Peer(connection, deadline, _limits.RequestTimeout);
                while (true)
                {
                    // Idle between requests for as long as an importer's pool may keep the connection; then the whole
                    // header within one request timeout of its first byte.
                    deadline.CancelAfter(_limits.IdleTimeout);
                    var first = await connection.ReadAsync(header, deadline.Token);
                    if (first == 0) return; // the client is done with this connection
                    deadline.CancelAfter(_limits.RequestTimeout);
                    try { await ReceiveExactlyAsync(connection, header.AsMemory(first), deadline.Token); }
                    catch (EndOfStreamException) { return; } // the client gave up in the middle of a request
                    if (Request.Read(header) is not { } request)
                    {
                        await peer.SendErrorAsync(FabricError.Invalid("not a Fabric data-plane request"));
                        return;
                    }
                    var keepOpen = request.Op switch
                    {
                        Op.Read => await ServeReadAsync(peer, request),
                        Op.Write => await ServeWriteAsync(peer, request),
                        _ => await ServeSourceAsync(peer, request),
                    };
                    if (!keepOpen) return;
                }
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException or AuthenticationException)
            {
                // The importer went away, failed the TLS handshake, stalled past a timeout, or the node is stopping:
                // the transfer is over, its pin already released.
            }
        }
        finally
        {
            await connection.DisposeAsync(); // the SslStream, when there is one, closes what it wraps
            Interlocked.Decrement(ref _serving);
        }
    }

    /// <summary>
    /// A connection being served and its deadline: every receive and send re-arms the connection's one token source,
    /// so each must make progress within the request timeout.
    /// </summary>
    private sealed class Peer(Stream stream, CancellationTokenSource deadline, TimeSpan timeout)
    {
        private CancellationToken Arm()
        {
            deadline.CancelAfter(timeout);
            return deadline.Token;
        }

        public ValueTask SendChunkHeaderAsync(int length) => DataPlaneProtocol.SendChunkHeaderAsync(stream, length, 0, Arm());

        public ValueTask SendErrorAsync(FabricError error) => DataPlaneProtocol.SendErrorAsync(stream, error, Arm());

        public ValueTask SendAsync(ReadOnlyMemory<byte> data) => SendAllAsync(stream, data, Arm());

        public ValueTask<(int Length, FabricError? Error)> ReceiveChunkHeaderAsync(byte[] scratch) =>
            DataPlaneProtocol.ReceiveChunkHeaderAsync(stream, scratch, Arm());

        /// <summary>Fills <paramref name="target"/>; each read, not the whole, has one request timeout.</summary>
        public async ValueTask ReceiveAsync(Memory<byte> target)
        {
            while (target.Length > 0)
            {
                var read = await stream.ReadAsync(target, Arm());
                if (read == 0) throw new EndOfStreamException("the peer closed the connection in the middle of a transfer");
                target = target[read..];
            }
        }
    }

    /// <summary>Checks the request against the export; answers the error itself when it is refused.</summary>
    private async ValueTask<ExportTable.Entry?> AuthorizeAsync(Peer peer, Request request, bool write)
    {
        var (entry, error) = _exports.Authorize(request.Device, request.Export, request.Attachment, request.Key, write);
        if (entry is { } e && (request.Offset < 0 || request.Length < 0 || request.Offset > e.Size || request.Length > e.Size - request.Offset))
            (entry, error) = (null, FabricError.Invalid($"[{request.Offset}, +{request.Length}) is outside {e.Id} of {e.Size} bytes"));
        if (entry is { } live && !live.Block.TryAcquire())
            (entry, error) = (null, new FabricError(ErrorCode.EIO, $"the memory of {live.Id} is gone"));
        if (error is not null) await peer.SendErrorAsync(error);
        return entry;
    }

    private async ValueTask<bool> ServeReadAsync(Peer peer, Request request)
    {
        if (await AuthorizeAsync(peer, request, write: false) is not { } entry) return true;
        try
        {
            for (long at = 0; at < request.Length; at += ChunkBytes)
            {
                if (entry.Ended is { } ended)
                {
                    await peer.SendErrorAsync(ended);
                    return true;
                }
                var length = (int)Math.Min(ChunkBytes, request.Length - at);
                await peer.SendChunkHeaderAsync(length);
                await peer.SendAsync(Window(entry, request.Offset + at, length));
            }
            await peer.SendChunkHeaderAsync(0);
            return true;
        }
        finally { entry.Block.Release(); }
    }

    private async ValueTask<bool> ServeWriteAsync(Peer peer, Request request)
    {
        var scratch = new byte[ChunkHeaderBytes];
        // A refused write's data is already on its way: it is read and dropped, so that the importer, which reads the
        // answer once it has sent everything, gets the refusal (closing now would reset the connection under it).
        if (await AuthorizeAsync(peer, request, write: true) is not { } entry)
            return await DrainAsync(peer, request.Length, scratch);
        try
        {
            long at = 0;
            while (true)
            {
                var (length, error) = await peer.ReceiveChunkHeaderAsync(scratch);
                if (error is not null) return false;
                if (length == 0) break;
                if (length < 0 || at + length > request.Length)
                {
                    await peer.SendErrorAsync(FabricError.Invalid($"the write to {entry.Id} sent more than the {request.Length} bytes it announced"));
                    return false;
                }
                if (entry.Ended is { } ended)
                {
                    await peer.SendErrorAsync(ended);
                    return false; // a revoked export takes no more: the importer learns it at once
                }
                await peer.ReceiveAsync(Window(entry, request.Offset + at, length));
                at += length;
            }
            if (at != request.Length)
                await peer.SendErrorAsync(FabricError.Invalid($"the write to {entry.Id} announced {request.Length} bytes and sent {at}"));
            else if (entry.Ended is { } ended)
                await peer.SendErrorAsync(ended);
            else
                await peer.SendChunkHeaderAsync(0);
            return true;
        }
        finally { entry.Block.Release(); }
    }

    /// <summary>
    /// Reads and drops a write the server has refused, up to its end header. Returns whether the connection can serve
    /// another request: not if the importer sends more than it announced or breaks the framing.
    /// </summary>
    private static async ValueTask<bool> DrainAsync(Peer peer, long announced, byte[] scratch)
    {
        var sink = new byte[64 * 1024];
        for (long at = 0; ;)
        {
            var (length, error) = await peer.ReceiveChunkHeaderAsync(scratch);
            if (error is not null || length < 0 || at + length > announced) return false;
            if (length == 0) return true;
            for (var left = length; left > 0;)
            {
                var part = Math.Min(left, sink.Length);
                await peer.ReceiveAsync(sink.AsMemory(0, part));
                left -= part;
            }
            at += length;
        }
    }

    private static async ValueTask<bool> ServeSourceAsync(Peer peer, Request request)
    {
        for (long at = 0; at < request.Length; at += ChunkBytes)
        {
            var length = (int)Math.Min(ChunkBytes, request.Length - at);
            await peer.SendChunkHeaderAsync(length);
            await peer.SendAsync(Nothing.AsMemory(0, length));
        }
        await peer.SendChunkHeaderAsync(0);
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

/// <summary>
/// How long a data-plane connection may wait on its peer, and how many the server serves at once (see
/// <see cref="DataPlaneServer"/>). The defaults are the node's; tests shorten them.
/// </summary>
/// <param name="RequestTimeout">From a request's first byte to its whole header, and for each receive and send of a transfer.</param>
/// <param name="IdleTimeout">Between whole requests, on a connection an importer keeps for reuse.</param>
/// <param name="MaxConnections">Connections served at once; one more is refused at once.</param>
internal sealed record DataPlaneLimits(TimeSpan RequestTimeout, TimeSpan IdleTimeout, int MaxConnections)
{
    public static readonly DataPlaneLimits Default = new(TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(10), 256);

    public void Validate()
    {
        var longest = TimeSpan.FromMilliseconds(int.MaxValue);
        if (RequestTimeout <= TimeSpan.Zero || IdleTimeout <= TimeSpan.Zero || RequestTimeout > longest || IdleTimeout > longest)
            throw new ArgumentOutOfRangeException(nameof(RequestTimeout),
                $"the data plane's request timeout ({RequestTimeout}) and idle timeout ({IdleTimeout}) must be positive and at most {longest.TotalDays:0} days");
        if (MaxConnections < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConnections), $"the data plane must serve at least one connection, not {MaxConnections}");
    }
}
