using System.Runtime.InteropServices;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>dma-buf export on one node, import on others: the bytes move over the data plane (real node processes).</summary>
[Collection(ProcessCollection.Name)]
public sealed class P2PTests(ClusterFixture cluster, ITestOutputHelper output) : ClusterTest<ClusterFixture>(cluster, output)
{
    private ActorSystemHolder _client = null!;

    public override async Task InitializeAsync() => _client = await ActorSystemHolder.ConnectAsync(Cluster["n1"].Endpoint);

    public override async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await base.DisposeAsync();
    }

    private FabricClient Client => _client.Client;


    [Fact]
    public async Task Devices_of_two_other_nodes_compute_from_one_nodes_export()
    {
        const int n = 256 * 1024;
        var data = Enumerable.Range(0, n).Select(i => MathF.Sin(i)).ToArray();
        await using var a = await P2P.OpenAsync(Client, new DeviceId("n1", 0));
        var source = await a.UploadAsync(data);
        var exported = await a.Context.ExportAsync(source.Handle, Access.Read);

        foreach (var (device, alpha) in new[] { (new DeviceId("n2", 0), 2f), (new DeviceId("n3", 1), -0.5f) })
        {
            await using var b = await P2P.OpenAsync(Client, device);
            var imported = await b.Context.ImportAsync(exported.Token);
            var remote = await b.Context.MapAsync(b.Space, imported.Handle, Access.Read);
            var local = await b.AllocateAsync(n * 4);
            var result = await b.AllocateAsync(n * 4 + 4096);

            await b.Context.RunAsync(new CommandBufferBuilder()
                .Copy(local.Iova, remote, n * 4)
                .Scale(result.Iova, local.Iova, n, alpha)
                .ReduceSum(result.Iova + n * 4, local.Iova, n)
                .Build(), TimeSpan.FromSeconds(60));

            var scaled = MemoryMarshal.Cast<byte, float>(await b.Context.ReadAsync(result.Handle, 0, n * 4)).ToArray();
            Assert.Equal(data.Select(v => v * alpha), scaled);
            var sum = BitConverter.ToSingle(await b.Context.ReadAsync(result.Handle, n * 4, 4));
            Assert.Equal(data.Sum(v => (double)v), sum, 0.01);
            Assert.Equal(MemoryMarshal.AsBytes(data.AsSpan(1000, 16)).ToArray(), await b.Context.ReadAsync(imported.Handle, 4000, 64));
            // A read-only import refuses every write, through the handle and through a command.
            Assert.Equal(ErrorCode.EPERM, (await Assert.ThrowsAsync<FabricException>(() => b.Context.WriteAsync(imported.Handle, 0, new byte[4]))).Code);
            Assert.Equal(ErrorCode.EPERM, (await Assert.ThrowsAsync<FabricException>(() =>
                b.Context.SubmitAsync(new CommandBufferBuilder().Copy(remote, local.Iova, 16).Build()))).Code);
            // Compute needs local memory: only COPY reaches another node's memory.
            var compute = await Assert.ThrowsAsync<FabricException>(() =>
                b.Context.SubmitAsync(new CommandBufferBuilder().Scale(local.Iova, remote, 4, 1f).Build()));
            Assert.Equal(ErrorCode.EINVAL, compute.Code);
        }
        await a.Context.CloseAsync();
        await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.MemoryUsed == 0 && d.Exports == 0), TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_read_write_import_writes_into_the_exporters_memory()
    {
        await using var a = await P2P.OpenAsync(Client, new DeviceId("n2", 1));
        await using var c = await P2P.OpenAsync(Client, new DeviceId("n3", 0));
        var target = await a.AllocateAsync(3 << 20);
        var exported = await a.Context.ExportAsync(target.Handle, Access.ReadWrite);
        var imported = await c.Context.ImportAsync(exported.Token);
        var remote = await c.Context.MapAsync(c.Space, imported.Handle, Access.ReadWrite);
        var payload = new byte[3 << 20];
        new Random(5).NextBytes(payload);
        var local = await c.UploadAsync(payload);

        await c.Context.RunAsync(new CommandBufferBuilder().Copy(remote + 5, local.Iova, (3 << 20) - 5).Build(), TimeSpan.FromSeconds(60));
        await c.Context.WriteAsync(imported.Handle, 0, new byte[] { 7, 8, 9, 10, 11 });

        var written = await a.Context.ReadAsync(target.Handle, 0, 3 << 20);
        Assert.Equal(new byte[] { 7, 8, 9, 10, 11 }, written[..5]);
        Assert.Equal(payload[..^5], written[5..]);
    }

    [Fact]
    public async Task A_fence_chain_runs_node_to_node_to_node_without_the_client()
    {
        const int n = 512;
        await using var a = await P2P.OpenAsync(Client, new DeviceId("n1", 1));
        await using var b = await P2P.OpenAsync(Client, new DeviceId("n2", 0));
        await using var c = await P2P.OpenAsync(Client, new DeviceId("n3", 0));
        var x = await a.AllocateAsync(64 << 10);
        var gateA = await a.AllocateAsync(n * n * 4);
        var gateC = await a.AllocateAsync(n * n * 4);
        var y = await b.AllocateAsync(64 << 10);
        var z = await c.AllocateAsync(64 << 10);
        var xOnB = await b.Context.MapAsync(b.Space, (await b.Context.ImportAsync((await a.Context.ExportAsync(x.Handle, Access.Read)).Token)).Handle, Access.Read);
        var yOnC = await c.Context.MapAsync(c.Space, (await c.Context.ImportAsync((await b.Context.ExportAsync(y.Handle, Access.Read)).Token)).Handle, Access.Read);

        // A: a slow matmul, then x is filled and the out-fence signals. B and C are queued before A finishes.
        var producedOnA = await a.Context.SubmitAsync(new CommandBufferBuilder()
            .MatMul(gateC.Iova, gateA.Iova, gateA.Iova, n, n, n).Fill(x.Iova, 64 << 10, 0x11223344).SignalFence(0).Build(), outFences: 1);
        var onB = await b.Context.SubmitAsync(new CommandBufferBuilder().WaitFence(0).Copy(y.Iova, xOnB, 64 << 10).SignalFence(0).Build(),
            inFences: [producedOnA.OutFences[0]], outFences: 1);
        var onC = await c.Context.SubmitAsync(new CommandBufferBuilder().WaitFence(0).Copy(z.Iova, yOnC, 64 << 10).Build(),
            inFences: [onB.OutFences[0]]);
        var status = await c.Context.WaitAsync(onC.Fence, TimeSpan.FromSeconds(60));

        Assert.Equal(FenceState.Completed, status.State);
        var result = await c.Context.ReadAsync(z.Handle, 0, 64 << 10);
        Assert.All(result.Chunk(4), word => Assert.Equal(new byte[] { 0x44, 0x33, 0x22, 0x11 }, word));
    }

    [Fact]
    public async Task The_exporters_close_keeps_the_memory_until_the_last_remote_importer_detaches()
    {
        var baseline = (await Client.GetDeviceInfoAsync(new DeviceId("n1", 0))).MemoryUsed;
        var a = await P2P.OpenAsync(Client, new DeviceId("n1", 0));
        await using var b = await P2P.OpenAsync(Client, new DeviceId("n2", 1));
        var source = await a.UploadAsync([.. Enumerable.Range(0, 1024).Select(i => (byte)i)]);
        var imported = await b.Context.ImportAsync((await a.Context.ExportAsync(source.Handle, Access.Read)).Token);

        await a.DisposeAsync();

        Assert.Equal(Enumerable.Range(0, 16).Select(i => (byte)i), await b.Context.ReadAsync(imported.Handle, 0, 16));
        // The device itself answers (the gateway's registry may be a second old).
        Assert.Equal(baseline + 4096, (await Client.GetDeviceInfoAsync(new DeviceId("n1", 0))).MemoryUsed);
        Assert.Equal(Enumerable.Range(100, 16).Select(i => (byte)i), await b.Context.ReadAsync(imported.Handle, 100, 16));
        await b.Context.FreeAsync(imported.Handle);
        await UntilAsync(async () => (await Client.GetDeviceInfoAsync(new DeviceId("n1", 0))).MemoryUsed, used => used == baseline,
            TimeSpan.FromSeconds(20), "n1/dev0 back at its baseline");
    }

    [Fact]
    public async Task Host_memory_mapped_for_a_device_in_another_process_works_on_a_copy_synced_on_request_and_at_unmap()
    {
        const int page = 4096;
        var device = new DeviceId("n2", 1);
        await using var b = await P2P.OpenAsync(Client, device);
        var bytes = new byte[3 * page];
        for (var i = 0; i < page / 4; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), (float)i);
        var usedBefore = (await Client.GetDeviceInfoAsync(device)).MemoryUsed;

        var mapping = await b.Context.MapHostMemoryAsync(b.Space, bytes, Access.ReadWrite);

        Assert.False(mapping.ZeroCopy);
        Assert.Equal(usedBefore, (await Client.GetDeviceInfoAsync(device)).MemoryUsed); // the copy is host memory of the node
        await b.Context.RunAsync(new CommandBufferBuilder().Scale(mapping.Iova + page, mapping.Iova, page / 4, 3f).Build(), TimeSpan.FromSeconds(30));
        Assert.Equal(0f, BitConverter.ToSingle(bytes, page + 5 * 4)); // the device wrote its copy, not this memory
        await mapping.SyncFromDeviceAsync();
        Assert.Equal(15f, BitConverter.ToSingle(bytes, page + 5 * 4));

        // A host change reaches the device after a sync; the unmap brings the device's last writes back.
        BitConverter.TryWriteBytes(bytes.AsSpan(5 * 4), 10f);
        await mapping.SyncToDeviceAsync();
        await b.Context.RunAsync(new CommandBufferBuilder().Scale(mapping.Iova + 2 * page, mapping.Iova, page / 4, -1f).Build(), TimeSpan.FromSeconds(30));
        await mapping.UnmapAsync();

        Assert.Equal(-10f, BitConverter.ToSingle(bytes, 2 * page + 5 * 4));
        Assert.Equal(-(float)(page / 4 - 1), BitConverter.ToSingle(bytes, 3 * page - 4));
        Assert.Equal(0, (await b.Context.GetInfoAsync()).Buffers);
    }

    [Fact]
    public async Task Forged_and_unknown_tokens_are_refused_across_nodes()
    {
        await using var a = await P2P.OpenAsync(Client, new DeviceId("n3", 1));
        await using var b = await P2P.OpenAsync(Client, new DeviceId("n1", 1));
        var exported = await a.Context.ExportAsync((await a.AllocateAsync(4096)).Handle, Access.Read);

        var forged = await Assert.ThrowsAsync<FabricException>(() => b.Context.ImportAsync(exported.Token with { Secret = Convert.ToBase64String(new byte[32]) }));
        var unknown = await Assert.ThrowsAsync<FabricException>(() =>
            b.Context.ImportAsync(exported.Token with { Export = exported.Token.Export with { Value = 999 } }));

        Assert.Equal(ErrorCode.EPERM, forged.Code);
        Assert.Equal(ErrorCode.ENOENT, unknown.Code);
        Assert.Equal(0, (await b.Context.GetInfoAsync()).Imports);
    }
}

/// <summary>A context with an attached address space, and helpers to put data in it.</summary>
public sealed class P2P : IAsyncDisposable
{
    private P2P(DeviceContext context, AddressSpaceId space)
    {
        Context = context;
        Space = space;
    }

    public DeviceContext Context { get; }
    public AddressSpaceId Space { get; }

    public static async Task<P2P> OpenAsync(FabricClient client, DeviceId device)
    {
        var context = await client.OpenAsync(device);
        var space = await context.CreateAddressSpaceAsync();
        await context.AttachAsync(space);
        return new P2P(context, space);
    }

    public async Task<(BufferHandle Handle, Iova Iova)> AllocateAsync(long bytes)
    {
        var handle = await Context.AllocateAsync(bytes);
        return (handle, await Context.MapAsync(Space, handle, Access.ReadWrite));
    }

    public Task<(BufferHandle Handle, Iova Iova)> UploadAsync(float[] data) => UploadAsync(MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    public async Task<(BufferHandle Handle, Iova Iova)> UploadAsync(byte[] data)
    {
        var buffer = await AllocateAsync(data.Length);
        await Context.WriteAsync(buffer.Handle, 0, data);
        return buffer;
    }

    public ValueTask DisposeAsync() => Context.DisposeAsync();
}

/// <summary>A client process's ActorSystem and client, connected to one node.</summary>
public sealed class ActorSystemHolder : IAsyncDisposable
{
    private readonly Akka.Actor.ActorSystem _system;

    private ActorSystemHolder(Akka.Actor.ActorSystem system, FabricClient client)
    {
        _system = system;
        Client = client;
    }

    public FabricClient Client { get; }

    public static async Task<ActorSystemHolder> ConnectAsync(string endpoint)
    {
        var system = FabricClientSystem.Create();
        return new ActorSystemHolder(system, await FabricClient.ConnectAsync(system, endpoint));
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await _system.Terminate();
    }
}
