using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Memory;
using Xunit.Abstractions;

namespace Fabric.Tests.DataPlane;

/// <summary>
/// A real <see cref="DataPlaneServer"/> on loopback TCP with short limits, against peers that stall: half a request
/// header, a write that stops sending, a connection idle between requests, more connections than the cap. Each test
/// is bounded in time; raw sockets play the slow peers, a <see cref="DataPlaneClient"/> the well-behaved importer.
/// </summary>
public sealed class DataPlaneSlowPeerTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromMilliseconds(300);
    private static readonly DeviceId Device = new("slow", 0);
    private static readonly ExportId Export = new(Device, 5);
    private static readonly byte[] Key = [.. Enumerable.Range(1, 16).Select(i => (byte)(i * 13))];
    private const long Attachment = 9;
    private const int Size = 4 << 20;

    /// <summary>One server, its export of one block, and an importer's client; torn down in reverse.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        public DeviceMemory Memory { get; } = new(8L << 20, 256);
        public MemoryBlock Block { get; }
        public ExportTable Exports { get; } = new();
        public DataPlaneServer Server { get; }
        public DataPlaneClient Client { get; } = new();
        public RemoteMemory Remote { get; }
        public byte[] Expected { get; }
        public bool BlockReleased { get; set; }

        public unsafe Rig(DataPlaneLimits limits)
        {
            Block = Memory.TryAllocate(Size, 4096)!;
            Expected = [.. Enumerable.Range(0, Size).Select(i => (byte)(i * 5 + i / 509))];
            Expected.CopyTo(new Span<byte>(Block.Pointer, Size));
            Exports.Register(Export, Block, Size, Access.ReadWrite).Attachments[Attachment] = Key;
            Server = new DataPlaneServer(IPAddress.Loopback, 0, Exports, limits: limits);
            Remote = new RemoteMemory(Export, $"127.0.0.1:{Server.Port}", Attachment, Key, Size, Access.ReadWrite);
        }

        public unsafe byte[] Snapshot(int offset, int length) => new Span<byte>(Block.Pointer + offset, length).ToArray();

        public async Task<byte[]> ReadAsync(DataPlaneClient client, int offset, int length, CancellationToken cancel)
        {
            var bytes = new byte[length];
            await client.ReadAsync(Remote, offset, length, (at, chunk) => bytes.AsMemory((int)at, chunk), cancel);
            return bytes;
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            await Server.DisposeAsync();
            if (!BlockReleased) Block.Release();
            Memory.Dispose();
        }
    }

    private static DataPlaneLimits Limits(TimeSpan? idle = null, int connections = 16) =>
        new(RequestTimeout, idle ?? TimeSpan.FromSeconds(5), connections);

    [Fact]
    public async Task Half_a_request_header_is_closed_after_the_request_timeout_while_others_are_served()
    {
        await using var rig = new Rig(Limits());
        using var cancel = new CancellationTokenSource(Bound);
        Assert.Equal(rig.Expected.AsSpan(100, 8192).ToArray(), await rig.ReadAsync(rig.Client, 100, 8192, cancel.Token));

        using var slow = await ConnectAsync(rig.Server, cancel.Token);
        await slow.SendAsync(ReadHeader(0, 4096).AsMemory(0, 10), SocketFlags.None, cancel.Token);
        var clock = Stopwatch.StartNew();
        var closed = await IsClosedAsync(slow, cancel.Token);
        var waited = clock.Elapsed;

        output.WriteLine($"half a header closed after {waited.TotalMilliseconds:0} ms");
        Assert.True(closed, "the server sent something to half a request instead of closing it");
        // It waited for the rest (not closed at once), and no longer than the timeout and some scheduling slack.
        Assert.InRange(waited, RequestTimeout * 0.6, RequestTimeout + TimeSpan.FromSeconds(3));
        Assert.Equal(rig.Expected.AsSpan(Size - 5000, 5000).ToArray(), await rig.ReadAsync(rig.Client, Size - 5000, 5000, cancel.Token));
        await EventuallyAsync(() => rig.Server.Serving == 1, "the stalled connection still counts as served", cancel.Token);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_write_that_stalls_is_closed_and_its_pin_on_the_block_released(bool insideChunk)
    {
        await using var rig = new Rig(Limits());
        using var cancel = new CancellationTokenSource(Bound);
        const int offset = 4096, announced = 64 << 10, chunk = 32 << 10;
        var stalled = Enumerable.Range(0, chunk).Select(i => (byte)~i).ToArray();

        using var slow = await ConnectAsync(rig.Server, cancel.Token);
        await slow.SendAsync(WriteHeader(offset, announced), SocketFlags.None, cancel.Token);
        await slow.SendAsync(Chunk(chunk), SocketFlags.None, cancel.Token);
        await slow.SendAsync(stalled.AsMemory(0, insideChunk ? chunk / 2 : chunk), SocketFlags.None, cancel.Token);
        // The server holds a pin for the transfer while it waits for the rest...
        await EventuallyAsync(() => rig.Block.References == 2, "the write never pinned the block", cancel.Token);
        var clock = Stopwatch.StartNew();
        Assert.True(await IsClosedAsync(slow, cancel.Token), "the server answered a write that had not finished");
        output.WriteLine($"stalled write ({(insideChunk ? "inside" : "after")} a chunk) closed after {clock.Elapsed.TotalMilliseconds:0} ms");

        // ...and releases it when it gives up on the peer.
        await EventuallyAsync(() => rig.Block.References == 1, "the stalled write kept its pin", cancel.Token);
        var payload = Enumerable.Range(0, announced).Select(i => (byte)(i * 3 + 1)).ToArray();
        await rig.Client.WriteAsync(rig.Remote, offset, announced, (at, n) => payload.AsMemory((int)at, n), cancel.Token);
        Assert.Equal(payload, rig.Snapshot(offset, announced));
        Assert.Equal(rig.Expected.AsSpan(0, offset).ToArray(), rig.Snapshot(0, offset));
        // The server releases the write's pin just after it sends the answer the client has read.
        await EventuallyAsync(() => rig.Block.References == 1, "the well-formed write kept its pin", cancel.Token);

        // Revoked and released by its owner, the block goes back to the device: no transfer holds it.
        rig.Exports.Unregister(Export, new FabricError(ErrorCode.EIO, $"{Export} was revoked"));
        rig.Block.Release();
        rig.BlockReleased = true;
        Assert.Equal((0L, 0), (rig.Memory.Stats.Used, rig.Memory.Stats.Allocations));
    }

    [Fact]
    public async Task An_importer_whose_pooled_connection_the_server_closed_for_idling_reads_on_a_new_one()
    {
        var idle = TimeSpan.FromMilliseconds(400);
        await using var rig = new Rig(Limits(idle));
        using var cancel = new CancellationTokenSource(Bound);

        Assert.Equal(rig.Expected.AsSpan(0, 5000).ToArray(), await rig.ReadAsync(rig.Client, 0, 5000, cancel.Token));
        await EventuallyAsync(() => rig.Server.Serving == 0, "the server kept the idle pooled connection past its idle timeout", cancel.Token);

        // The pool still holds the connection the server closed: the client must see that and connect again.
        Assert.Equal(rig.Expected.AsSpan(123_456, 70_000).ToArray(), await rig.ReadAsync(rig.Client, 123_456, 70_000, cancel.Token));
    }

    [Fact]
    public async Task A_connection_idle_between_requests_is_served_within_the_idle_timeout_and_closed_after_it()
    {
        var idle = TimeSpan.FromSeconds(2);
        await using var rig = new Rig(Limits(idle));
        using var cancel = new CancellationTokenSource(Bound);
        using var socket = await ConnectAsync(rig.Server, cancel.Token);

        await socket.SendAsync(ReadHeader(10, 3000), SocketFlags.None, cancel.Token);
        Assert.Equal(rig.Expected.AsSpan(10, 3000).ToArray(), await ReceiveDataAsync(socket, cancel.Token));
        await Task.Delay(RequestTimeout * 3, cancel.Token); // idle far past the request timeout, within the idle one
        await socket.SendAsync(ReadHeader(Size - 70_000, 70_000), SocketFlags.None, cancel.Token);
        Assert.Equal(rig.Expected.AsSpan(Size - 70_000, 70_000).ToArray(), await ReceiveDataAsync(socket, cancel.Token));

        var clock = Stopwatch.StartNew();
        Assert.True(await IsClosedAsync(socket, cancel.Token), "the server sent something to an idle connection");
        output.WriteLine($"idle connection closed after {clock.Elapsed.TotalMilliseconds:0} ms");
        Assert.InRange(clock.Elapsed, idle * 0.8, idle + TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task Beyond_the_cap_a_connection_is_refused_with_EBUSY_while_the_others_are_served()
    {
        await using var rig = new Rig(Limits(connections: 2));
        using var cancel = new CancellationTokenSource(Bound);
        using var first = await ConnectAsync(rig.Server, cancel.Token);
        using var second = await ConnectAsync(rig.Server, cancel.Token);
        foreach (var (socket, at) in new[] { (first, 0), (second, 50_000) })
        {
            await socket.SendAsync(ReadHeader(at, 2048), SocketFlags.None, cancel.Token);
            Assert.Equal(rig.Expected.AsSpan(at, 2048).ToArray(), await ReceiveDataAsync(socket, cancel.Token));
        }
        Assert.Equal(2, rig.Server.Serving);

        using var third = await ConnectAsync(rig.Server, cancel.Token);
        await third.SendAsync(ReadHeader(0, 2048), SocketFlags.None, cancel.Token);
        var busy = await ReceiveErrorAsync(third, cancel.Token);
        Assert.True(await IsClosedAsync(third, cancel.Token), "a refused connection stayed open");
        using var importer = new DataPlaneClient();
        var refused = await Assert.ThrowsAsync<FabricException>(() => rig.ReadAsync(importer, 0, 2048, cancel.Token));
        output.WriteLine($"{busy}; the importer: {refused.Error}");

        Assert.Equal(ErrorCode.EBUSY, busy.Code);
        Assert.Equal($"the data plane of 127.0.0.1:{rig.Server.Port} serves 2 connections already", busy.Message);
        Assert.Equal(busy, refused.Error);
        Assert.Equal(2, rig.Server.Serving);
        // The two served ones are still served, on the same connections.
        await second.SendAsync(ReadHeader(7, 999), SocketFlags.None, cancel.Token);
        Assert.Equal(rig.Expected.AsSpan(7, 999).ToArray(), await ReceiveDataAsync(second, cancel.Token));

        first.Close();
        await EventuallyAsync(() => rig.Server.Serving == 1, "the closed connection still counts as served", cancel.Token);
        Assert.Equal(rig.Expected.AsSpan(123_456, 4096).ToArray(), await rig.ReadAsync(importer, 123_456, 4096, cancel.Token));
        Assert.Equal(2, rig.Server.Serving); // the importer's connection, pooled, and the second
    }

    private static async Task<Socket> ConnectAsync(DataPlaneServer server, CancellationToken cancel)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.Port), cancel);
        return socket;
    }

    private static byte[] ReadHeader(long offset, long length) => Header(DataPlaneProtocol.Op.Read, offset, length);

    private static byte[] WriteHeader(long offset, long length) => Header(DataPlaneProtocol.Op.Write, offset, length);

    private static byte[] Header(DataPlaneProtocol.Op op, long offset, long length)
    {
        var bytes = new byte[DataPlaneProtocol.RequestBytes];
        new DataPlaneProtocol.Request(op, Device.Index, Export.Value, Attachment, Key, offset, length).WriteTo(bytes);
        return bytes;
    }

    private static byte[] Chunk(int length)
    {
        var bytes = new byte[DataPlaneProtocol.ChunkHeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, length);
        return bytes;
    }

    /// <summary>Polls a condition the server reaches on its own time (a connection's task ending), within the test's bound.</summary>
    private static async Task EventuallyAsync(Func<bool> condition, string failure, CancellationToken cancel)
    {
        while (!condition())
        {
            if (cancel.IsCancellationRequested) Assert.Fail(failure);
            await Task.Delay(20, CancellationToken.None);
        }
    }

    /// <summary>True when the server closes (or resets) the connection; false when it sends a byte first.</summary>
    private static async Task<bool> IsClosedAsync(Socket socket, CancellationToken cancel)
    {
        try { return await socket.ReceiveAsync(new byte[1], SocketFlags.None, cancel) == 0; }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return true; }
    }

    private static async Task<FabricError> ReceiveErrorAsync(Socket socket, CancellationToken cancel)
    {
        var header = new byte[DataPlaneProtocol.ChunkHeaderBytes];
        await ReceiveExactlyAsync(socket, header, cancel);
        var status = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
        Assert.True(status != 0, "a data chunk where a refusal was due");
        var text = new byte[BinaryPrimitives.ReadInt32LittleEndian(header)];
        await ReceiveExactlyAsync(socket, text, cancel);
        return new FabricError((ErrorCode)status, Encoding.UTF8.GetString(text));
    }

    private static async Task<byte[]> ReceiveDataAsync(Socket socket, CancellationToken cancel)
    {
        var data = new List<byte>();
        var header = new byte[DataPlaneProtocol.ChunkHeaderBytes];
        while (true)
        {
            await ReceiveExactlyAsync(socket, header, cancel);
            var length = BinaryPrimitives.ReadInt32LittleEndian(header);
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4)));
            if (length == 0) return [.. data];
            var chunk = new byte[length];
            await ReceiveExactlyAsync(socket, chunk, cancel);
            data.AddRange(chunk);
        }
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> target, CancellationToken cancel)
    {
        while (target.Length > 0)
        {
            var read = await socket.ReceiveAsync(target, SocketFlags.None, cancel);
            Assert.True(read > 0, "the server closed the connection in the middle of an answer");
            target = target[read..];
        }
    }
}
