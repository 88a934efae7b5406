using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Tests.DataPlane;

/// <summary>The data plane on its own, over real loopback TCP: what it serves, to whom, and how a transfer ends.</summary>
public sealed class DataPlaneTests : IAsyncLifetime
{
    private FabricDataPlane _server = null!;
    private FabricDataPlane _client = null!;
    private readonly DeviceMemory _memory = new(64L << 20, 256);
    private MemoryBlock _block = null!;
    private static readonly DeviceId Device = new("dp", 0);

    public Task InitializeAsync()
    {
        _server = FabricDataPlane.Start();
        _client = FabricDataPlane.Start();
        _block = _memory.TryAllocate(48L << 20, 4096)!;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await _server.DisposeAsync();
        _block.Release();
        _memory.Dispose();
    }

    private unsafe void Fill(byte value) => new Span<byte>(_block.Pointer, (int)_block.Size).Fill(value);

    private unsafe byte At(long offset) => _block.Pointer[offset];

    private RemoteMemory Serve(Access access, out ExportTable.Entry entry, byte[]? key = null)
    {
        var id = new ExportId(Device, 1);
        entry = _server.Exports.Register(id, _block, _block.Size, access);
        key ??= [.. Enumerable.Range(1, 16).Select(i => (byte)i)];
        entry.Attachments[7] = key;
        return new RemoteMemory(id, _server.Endpoint, 7, key, _block.Size, access);
    }

    private async Task<byte[]> ReadAsync(RemoteMemory remote, long offset, int length)
    {
        var bytes = new byte[length];
        await _client.Client.ReadAsync(remote, offset, length, (at, chunk) => bytes.AsMemory((int)at, chunk), CancellationToken.None);
        return bytes;
    }

    [Fact]
    public async Task An_attached_importer_reads_and_writes_byte_exact_ranges_across_chunks()
    {
        Fill(3);
        var remote = Serve(Access.ReadWrite, out _);
        var payload = Enumerable.Range(0, (1 << 20) + 4099).Select(i => (byte)(i * 31)).ToArray();

        await _client.Client.WriteAsync(remote, 5, payload.Length, (at, chunk) => payload.AsMemory((int)at, chunk), CancellationToken.None);
        var back = await ReadAsync(remote, 5, payload.Length);

        Assert.Equal(payload, back);
        Assert.Equal(3, At(4));
        Assert.Equal(3, At(5 + payload.Length));
        // No transfer holds a pin once done: the server releases it just after it sends the last chunk, which the
        // client may have read already.
        var released = System.Diagnostics.Stopwatch.StartNew();
        while (_block.References != 1 && released.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        Assert.Equal(1, _block.References);
    }

    [Fact]
    public async Task A_large_write_to_a_read_only_export_gets_the_refusal_not_a_broken_connection()
    {
        var remote = Serve(Access.Read, out _);
        var length = 16L << 20; // far more than the socket buffers: the exporter must read it to the end to be heard

        var refused = await Assert.ThrowsAsync<FabricException>(() =>
            _client.Client.WriteAsync(remote, 0, length, (_, chunk) => new byte[chunk], CancellationToken.None));

        Assert.Equal(ErrorCode.EPERM, refused.Code);
        Assert.Contains("read-only", refused.Error.Message);
        Assert.Equal(new byte[16], await ReadAsync(remote, 0, 16));
    }

    [Fact]
    public async Task A_wrong_key_an_unknown_export_and_a_write_to_a_read_only_export_are_refused()
    {
        var remote = Serve(Access.Read, out _);

        var forged = await Assert.ThrowsAsync<FabricException>(() => ReadAsync(remote with { Key = new byte[16] }, 0, 16));
        var detached = await Assert.ThrowsAsync<FabricException>(() => ReadAsync(remote with { Attachment = 8 }, 0, 16));
        var unknown = await Assert.ThrowsAsync<FabricException>(() => ReadAsync(remote with { Export = new ExportId(Device, 2) }, 0, 16));
        var write = await Assert.ThrowsAsync<FabricException>(() =>
            _client.Client.WriteAsync(remote, 0, 16, (_, chunk) => new byte[chunk], CancellationToken.None));
        var outside = await Assert.ThrowsAsync<FabricException>(() => ReadAsync(remote, _block.Size - 8, 16));

        Assert.Equal((ErrorCode.EPERM, ErrorCode.EPERM, ErrorCode.ENOENT, ErrorCode.EPERM, ErrorCode.EINVAL),
            (forged.Code, detached.Code, unknown.Code, write.Code, outside.Code));
        Assert.Contains("read-only", write.Error.Message);
        Assert.Equal(new byte[16], await ReadAsync(remote, 0, 16)); // the connection is still good for a valid request
    }

    [Fact]
    public async Task A_revoke_stops_a_transfer_of_48_chunks_at_the_servers_next_chunk_with_EIO()
    {
        var remote = Serve(Access.Read, out var entry);
        var chunks = 0;

        var read = _client.Client.ReadAsync(remote, 0, _block.Size, (at, chunk) =>
        {
            if (++chunks == 1) entry.End(new FabricError(ErrorCode.EIO, "export dp/dev0/export-1 was revoked"));
            return new byte[chunk];
        }, CancellationToken.None);
        var error = await Assert.ThrowsAsync<FabricException>(() => read);

        Assert.Equal(ErrorCode.EIO, error.Code);
        Assert.Contains("revoked", error.Error.Message);
        // What was already in the sockets' buffers still arrives; the server sends nothing after it sees the revoke.
        Assert.True(chunks < 16, $"{chunks} of 48 chunks arrived after the revoke");
    }

    [Fact]
    public async Task A_dead_endpoint_is_ENODEV_naming_the_node()
    {
        var remote = new RemoteMemory(new ExportId(new DeviceId("gone", 0), 1), "127.0.0.1:1", 1, new byte[16], 4096, Access.Read);

        var error = await Assert.ThrowsAsync<FabricException>(() => ReadAsync(remote, 0, 16));

        Assert.Equal(ErrorCode.ENODEV, error.Code);
        Assert.Contains("gone", error.Error.Message);
    }
}
