using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

public sealed class ContextLifetimeTests(ITestOutputHelper output) : DeviceStackTest(output)
{
    [Fact]
    public async Task Freshly_allocated_memory_reads_as_zeros_and_counts_as_used()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var handle = await context.AllocateAsync(10_000);

        var bytes = await context.ReadAsync(handle, 0, 10_000);

        Assert.All(bytes, b => Assert.Equal(0, b));
        Assert.Equal(12_288, (await InfoAsync(0)).MemoryUsed); // rounded up to whole 4 KiB pages
    }

    [Fact]
    public async Task Close_releases_every_buffer_mapping_and_address_space()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var (a, _) = await BufferWithAsync(context, space, new byte[8192]);
        await BufferWithAsync(context, space, new byte[4096]);
        await context.ExportAsync(a);
        Assert.Equal(12_288, (await InfoAsync(0)).MemoryUsed);
        Watch(context.Actor);

        await context.CloseAsync();

        await ExpectTerminatedAsync(context.Actor);
        await AwaitMemoryUsedAsync(0, 0);
        await AwaitAssertAsync(async () =>
        {
            var info = await InfoAsync(0);
            Assert.Equal(0, info.OpenContexts);
            Assert.Equal(0, info.Exports);
        });
    }

    [Fact]
    public async Task Client_death_releases_everything_it_held_on_every_device()
    {
        var client = FabricClient.Connect(Sys, Devices);
        var (ctx0, space0) = await OpenAttachedAsync(0, client);
        var (ctx1, space1) = await OpenAttachedAsync(1, client);
        var (buffer, iova) = await BufferWithAsync(ctx0, space0, new byte[1 << 20]);
        await BufferWithAsync(ctx1, space1, new byte[1 << 16]);
        var exported = await ctx0.ExportAsync(buffer);
        await ctx1.ImportAsync(exported.Token);
        await ctx0.RunAsync(new CommandBufferBuilder().Fill(iova, 4096, 7).Build(), Wait);
        Assert.True((await InfoAsync(0)).MemoryUsed > 0);
        Watch(ctx0.Actor);
        Watch(ctx1.Actor);

        // The client's session actor stops, as when its process dies: no Close is sent.
        Sys.Stop(client.Session);

        var stopped = new[] { await ExpectMsgAsync<Terminated>(), await ExpectMsgAsync<Terminated>() };
        Assert.Equal(new[] { ctx0.Actor, ctx1.Actor }.ToHashSet(), stopped.Select(t => t.ActorRef).ToHashSet());
        await AwaitMemoryUsedAsync(0, 0);
        await AwaitMemoryUsedAsync(1, 0);
        var after = await InfoAsync(0);
        Assert.Equal((0, 0), (after.OpenContexts, after.Exports));
    }

    [Fact]
    public async Task Closed_context_refuses_further_requests_with_ENODEV()
    {
        var context = await Client.OpenAsync(Dev(0));
        await context.CloseAsync();

        var error = await FailsWithAsync(ErrorCode.ENODEV, () => context.AllocateAsync(4096));

        Assert.Contains(context.ToString(), error.Message);
    }

    [Fact]
    public async Task Allocation_beyond_device_memory_fails_with_ENOMEM_and_names_the_device()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        await context.AllocateAsync(12L << 20);

        var error = await FailsWithAsync(ErrorCode.ENOMEM, () => context.AllocateAsync(8L << 20));

        Assert.Contains(Dev(0).ToString(), error.Message);
        Assert.Equal(12L << 20, (await InfoAsync(0)).MemoryUsed);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(-5, 0)]
    [InlineData(4096, 3)]
    public async Task Bad_allocation_arguments_fail_with_EINVAL(long size, long alignment)
    {
        await using var context = await Client.OpenAsync(Dev(0));

        await FailsWithAsync(ErrorCode.EINVAL, () => context.AllocateAsync(size, alignment));

        Assert.Equal(0, (await InfoAsync(0)).MemoryUsed);
    }

    [Fact]
    public async Task Unknown_allocation_flags_fail_with_EINVAL_and_NoExport_buffers_refuse_export_with_EPERM()
    {
        await using var context = await Client.OpenAsync(Dev(0));

        await FailsWithAsync(ErrorCode.EINVAL, () => context.AllocateAsync(4096, flags: (AllocationFlags)0x40));
        var pinned = await context.AllocateAsync(4096, flags: AllocationFlags.NoExport | AllocationFlags.Contiguous);
        var error = await FailsWithAsync(ErrorCode.EPERM, () => context.ExportAsync(pinned));

        Assert.Contains("NoExport", error.Message);
        Assert.Equal(4096, (await InfoAsync(0)).MemoryUsed);
    }

    [Fact]
    public async Task Freeing_an_unknown_or_mapped_handle_fails_with_EINVAL()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var (handle, iova) = await BufferWithAsync(context, space, new byte[4096]);

        await FailsWithAsync(ErrorCode.EINVAL, () => context.FreeAsync(new BufferHandle(99)));
        var mapped = await FailsWithAsync(ErrorCode.EINVAL, () => context.FreeAsync(handle));
        Assert.Contains("mapped", mapped.Message);

        await context.UnmapAsync(space, iova, 4096);
        await context.FreeAsync(handle);
        Assert.Equal(0, (await InfoAsync(0)).MemoryUsed);
    }

    [Fact]
    public async Task Another_contexts_handle_is_refused_with_EPERM_naming_its_owner()
    {
        await using var owner = await Client.OpenAsync(Dev(0));
        await using var other = await Client.OpenAsync(Dev(0));
        var handle = await owner.AllocateAsync(4096);
        await owner.WriteAsync(handle, 0, new byte[] { 1, 2, 3 });

        var read = await FailsWithAsync(ErrorCode.EPERM, () => other.ReadAsync(handle, 0, 3));
        Assert.Contains(owner.Id.ToString(), read.Message);
        await FailsWithAsync(ErrorCode.EPERM, () => other.FreeAsync(handle));
        await FailsWithAsync(ErrorCode.EPERM, () => other.ExportAsync(handle));
        var space = await other.CreateAddressSpaceAsync();
        await FailsWithAsync(ErrorCode.EPERM, () => other.MapAsync(space, handle, Access.ReadWrite));
        // A handle no context issued is EINVAL on every path (habanalabs), not ENOENT on some.
        var unknown = BufferHandle.Of(other.Id, 999);
        await FailsWithAsync(ErrorCode.EINVAL, () => other.ReadAsync(unknown, 0, 3));
        await FailsWithAsync(ErrorCode.EINVAL, () => other.MapAsync(space, unknown, Access.ReadWrite));
        await FailsWithAsync(ErrorCode.EINVAL, () => other.ExportAsync(unknown));
        await FailsWithAsync(ErrorCode.EINVAL, () => other.FreeAsync(unknown));

        Assert.Equal(new byte[] { 1, 2, 3 }, await owner.ReadAsync(handle, 0, 3));
    }

    [Fact]
    public async Task Host_reads_and_writes_are_byte_exact_at_any_offset_and_bounds_checked()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var handle = await context.AllocateAsync(4096);
        var data = Enumerable.Range(0, 300).Select(i => (byte)(i * 7)).ToArray();

        await context.WriteAsync(handle, 3, data);

        Assert.Equal(data, await context.ReadAsync(handle, 3, 300));
        Assert.Equal(0, (await context.ReadAsync(handle, 2, 1))[0]);
        await FailsWithAsync(ErrorCode.EINVAL, () => context.WriteAsync(handle, 4000, new byte[100]));
        await FailsWithAsync(ErrorCode.EINVAL, () => context.ReadAsync(handle, -1, 10));
    }

    [Fact]
    public async Task Large_host_transfers_travel_in_chunks_and_arrive_whole()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var handle = await context.AllocateAsync(1 << 20);
        var data = new byte[(1 << 20) - 5];
        new Random(3).NextBytes(data);

        await context.WriteAsync(handle, 5, data);

        Assert.Equal(data, await context.ReadAsync(handle, 5, data.Length));
    }

    [Fact]
    public async Task Opening_an_unknown_device_fails_with_ENODEV_naming_it()
    {
        var error = await FailsWithAsync(ErrorCode.ENODEV, () => Client.OpenAsync(Dev(7)));

        Assert.Contains("t/dev7", error.Message);
    }

    [Fact]
    public async Task Device_info_is_read_without_opening_the_device()
    {
        var devices = await Client.ListDevicesAsync();

        Assert.Equal([Dev(0), Dev(1)], devices.Select(d => d.Id));
        Assert.All(devices, d => Assert.Equal((16L << 20, 0L, 0), (d.MemoryTotal, d.MemoryUsed, d.OpenContexts)));
    }
}
