using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>
/// Behaviours the Linux uAPIs define (iommufd, dma-buf/sync_file, habanalabs): an unmap wins over work in flight,
/// a device in reset refuses all work, a cancelled wait is gone, attach replaces, bounded multi-waits, and the
/// kernel's order of argument checks.
/// </summary>
public sealed class UapiSemanticsTests(ITestOutputHelper output) : DeviceStackTest(output,
    new DeviceProfile { MemoryBytes = 32L << 20, Queues = 2 },
    new DeviceProfile { MemoryBytes = 32L << 20, Queues = 2 })
{
    private const int Big = 1024;

    /// <summary>Long matmuls (tens of GFLOP) on <paramref name="queue"/> into a result buffer of their own.</summary>
    private static async Task<(ContextRequests.Submitted Gate, BufferHandle Result, Iova ResultIova)> LongWorkAsync(DeviceContext context,
        AddressSpaceId space, int queue = 0, int matmuls = 16)
    {
        var matrix = await context.AllocateAsync(Big * Big * 4);
        var result = await context.AllocateAsync(Big * Big * 4);
        var a = await context.MapAsync(space, matrix, Access.ReadWrite);
        var c = await context.MapAsync(space, result, Access.ReadWrite);
        var commands = new CommandBufferBuilder();
        for (var i = 0; i < matmuls; i++) commands.MatMul(c, a, a, Big, Big, Big);
        return (await context.SubmitAsync(commands.Build(), queue), result, c);
    }

    [Fact]
    public async Task An_unmap_of_a_range_in_use_aborts_its_users_with_EFAULT_before_it_returns()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var (running, result, resultIova) = await LongWorkAsync(context, space);
        var (_, scratch) = await BufferWithAsync(context, space, new byte[4096]);
        // Queued behind the running one on the same queue, writing the same range.
        var queued = await context.SubmitAsync(new CommandBufferBuilder().Fill(resultIova, 4096, 0x01010101).Fill(scratch, 4096, 7).Build());
        Assert.Equal(FenceState.Busy, (await context.WaitAsync(running.Fence, TimeSpan.Zero)).State);

        var unmapped = await context.UnmapAsync(space, resultIova, (ulong)Big * Big * 4);

        // The unmap answered only after its users stopped: both fences have signalled, with an I/O page fault.
        Assert.Equal((ulong)Big * Big * 4, unmapped);
        var (first, second) = (await context.WaitAsync(running.Fence, TimeSpan.Zero), await context.WaitAsync(queued.Fence, TimeSpan.Zero));
        Assert.Equal((FenceState.Failed, ErrorCode.EFAULT), (first.State, first.Error!.Code));
        Assert.Equal((FenceState.Failed, ErrorCode.EFAULT), (second.State, second.Error!.Code));
        Assert.Contains("unmapped", first.Error.Message);
        // No write lands after the unmap returned: the buffer reads the same now and a moment later, and may be freed.
        var now = await context.ReadAsync(result, 0, 4096);
        await Task.Delay(50);
        Assert.Equal(now, await context.ReadAsync(result, 0, 4096));
        await context.FreeAsync(result);
        await FailsWithAsync(ErrorCode.EFAULT, () => context.SubmitAsync(new CommandBufferBuilder().Fill(resultIova, 4096, 1).Build()));
    }

    [Fact]
    public async Task A_device_in_reset_refuses_all_work_with_EBUSY_and_shows_it_without_a_context()
    {
        var (context, space) = await OpenAttachedAsync(1);
        var (handle, iova) = await BufferWithAsync(context, space, new byte[4096]);
        var done = await context.RunAsync(new CommandBufferBuilder().Fill(iova, 4096, 3).Build(), Wait);

        var reset = Client.ResetDeviceAsync(Dev(1), hold: TimeSpan.FromSeconds(2));
        await AwaitAssertAsync(async () => Assert.Equal(DeviceStatus.InReset, (await InfoAsync(1)).Status), Wait);

        await FailsWithAsync(ErrorCode.EBUSY, () => context.AllocateAsync(4096));
        await FailsWithAsync(ErrorCode.EBUSY, () => context.MapAsync(space, handle, Access.Read));
        await FailsWithAsync(ErrorCode.EBUSY, () => context.SubmitAsync(new CommandBufferBuilder().Fill(iova, 4096, 4).Build()));
        await FailsWithAsync(ErrorCode.EBUSY, () => FabricClient.Connect(Sys, Devices).WaitAsync(done, TimeSpan.FromSeconds(1)));
        await FailsWithAsync(ErrorCode.EBUSY, () => Client.OpenAsync(Dev(1)));
        Assert.Equal(DeviceStatus.Operational, (await InfoAsync(0)).Status); // the other device is not in reset

        Assert.Equal(0, await reset);
        Assert.Equal(DeviceStatus.Operational, (await InfoAsync(1)).Status);
        await context.RunAsync(new CommandBufferBuilder().Fill(iova, 4096, 5).Build(), Wait);
        Assert.Equal(new byte[] { 5, 0, 0, 0 }, await context.ReadAsync(handle, 0, 4));
    }

    [Fact]
    public async Task A_cancelled_wait_is_gone_from_the_device_at_once()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var (running, _, _) = await LongWorkAsync(context, space);
        var other = FabricClient.Connect(Sys, Devices); // not the submitter: it waits on the device, not on its own library
        using var cancel = new CancellationTokenSource();

        var wait = other.WaitAsync(running.Fence, TimeSpan.FromMinutes(1), cancel.Token);
        await AwaitAssertAsync(async () => Assert.Equal(1, (await InfoAsync(0)).Waiters), Wait);
        cancel.Cancel();

        await Assert.ThrowsAnyAsync<Exception>(() => wait);
        await AwaitAssertAsync(async () => Assert.Equal(0, (await InfoAsync(0)).Waiters), TimeSpan.FromSeconds(2));
        Assert.Equal(FenceState.Busy, (await context.WaitAsync(running.Fence, TimeSpan.Zero)).State); // the work still runs
        await context.CloseAsync();
    }

    [Fact]
    public async Task Attaching_to_another_address_space_replaces_and_to_the_same_one_is_a_no_op()
    {
        var (context, first) = await OpenAttachedAsync(0);
        var second = await context.CreateAddressSpaceAsync();
        var (handle, _) = await BufferWithAsync(context, first, new byte[4096]);
        var onlyInSecond = await context.MapAsync(second, handle, Access.ReadWrite, iova: 0x40_0000);

        await context.AttachAsync(first); // already there: nothing changes
        await context.AttachAsync(second);

        await context.RunAsync(new CommandBufferBuilder().Fill(onlyInSecond, 4096, 9).Build(), Wait);
        Assert.Equal(new byte[] { 9, 0, 0, 0 }, await context.ReadAsync(handle, 0, 4));
        await FailsWithAsync(ErrorCode.EBUSY, () => context.DestroyAddressSpaceAsync(second));
        await context.DestroyAddressSpaceAsync(first); // no longer attached
        await FailsWithAsync(ErrorCode.EINVAL, () => context.DetachAsync(first));
    }

    [Fact]
    public async Task A_multi_wait_takes_at_most_32_fences()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var (_, iova) = await BufferWithAsync(context, space, new byte[4096]);
        var fences = new List<FenceId>();
        for (var i = 0; i < DeviceRequests.MaxWaitFences + 1; i++)
            fences.Add((await context.SubmitAsync(new CommandBufferBuilder().Fill(iova, 64, (uint)i).Build())).Fence);

        var error = await FailsWithAsync(ErrorCode.EINVAL, () => Client.WaitAnyAsync(fences, Wait));

        Assert.Contains("32", error.Message);
        Assert.NotEmpty(await Client.WaitAnyAsync(fences.Take(DeviceRequests.MaxWaitFences), Wait));
    }

    [Fact]
    public async Task Map_arguments_are_judged_in_the_kernels_order()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var space = await context.CreateAddressSpaceAsync();
        var handle = await context.AllocateAsync(8192);
        var unknownSpace = new AddressSpaceId(99);

        // Unknown access bits, and no permission at all, are EINVAL even for an unknown address space.
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapAsync(unknownSpace, handle, (Access)0x10));
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapAsync(unknownSpace, handle, Access.None));
        // A wrapping range is EOVERFLOW before its alignment (0x...ff01 is not page aligned) or its id is judged.
        await FailsWithAsync(ErrorCode.EOVERFLOW, () => context.MapAsync(unknownSpace, handle, Access.Read, iova: ulong.MaxValue - 0xfe, length: 8192));
        await FailsWithAsync(ErrorCode.ENOENT, () => context.MapAsync(unknownSpace, handle, Access.Read));
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapAsync(space, new BufferHandle(12345), Access.Read));
        Assert.NotEqual(0UL, (await context.MapAsync(space, handle, Access.Read)).Value);
    }

    [Fact]
    public async Task A_revoked_dma_buf_mapped_again_is_ENODEV()
    {
        var (exporter, _) = await OpenAttachedAsync(0);
        var (importer, space) = await OpenAttachedAsync(1);
        var buffer = await exporter.AllocateAsync(4096);
        var exported = await exporter.ExportAsync(buffer);
        var imported = await importer.ImportAsync(exported.Token);
        var iova = await importer.MapAsync(space, imported.Handle, Access.Read);
        await importer.UnmapAsync(space, iova, 4096);

        await exporter.RevokeAsync(exported.Token.Export);

        await AwaitAssertAsync(async () => await FailsWithAsync(ErrorCode.ENODEV, () => importer.MapAsync(space, imported.Handle, Access.Read)), Wait);
        await FailsWithAsync(ErrorCode.EIO, () => importer.ReadAsync(imported.Handle, 0, 4));
    }
}

/// <summary>iommufd's IOVA ranges, allowed IOVAs, reserved holes and IOAS_COPY, through the actors.</summary>
public sealed class IovaRangeTests(ITestOutputHelper output) : DeviceStackTest(output,
    new DeviceProfile { MemoryBytes = 16L << 20, PageSize = 16384, IovaBits = 32, ReservedIovas = [(0xFEE0_0000UL, 0xFEEF_FFFFUL)] })
{
    private static readonly ContextRequests.IovaRange Everything = new(0, ulong.MaxValue);

    [Fact]
    public async Task Usable_ranges_narrow_on_attach_and_widen_on_detach()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var space = await context.CreateAddressSpaceAsync();

        var before = await context.GetIovaRangesAsync(space);
        await context.AttachAsync(space);
        var attached = await context.GetIovaRangesAsync(space);
        await context.DetachAsync(space);
        var after = await context.GetIovaRangesAsync(space);

        Assert.Equal([Everything], before.Ranges.ToArray());
        Assert.Equal(4096UL, before.Alignment);
        Assert.Equal([new(0, 0xFEDF_FFFF), new(0xFEF0_0000, 0xFFFF_FFFF)], attached.Ranges.ToArray());
        Assert.Equal(16384UL, attached.Alignment);
        Assert.Equal([Everything], after.Ranges.ToArray());
        Assert.Equal(4096UL, after.Alignment);
    }

    [Fact]
    public async Task A_space_with_no_device_maps_at_the_host_page_size_and_an_attach_it_cannot_honour_fails_with_EADDRINUSE()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var space = await context.CreateAddressSpaceAsync();
        var buffer = await context.AllocateAsync(16384);

        var small = await context.MapAsync(space, buffer, Access.Read, iova: 0x1000, length: 4096);

        Assert.Equal(0x1000UL, small.Value);
        await FailsWithAsync(ErrorCode.EADDRINUSE, () => context.AttachAsync(space));
        await context.UnmapAsync(space, small, 4096);
        await context.AttachAsync(space);
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapAsync(space, buffer, Access.Read, iova: 0x1000, length: 4096));
        // Past the 32-bit aperture without wrapping: EINVAL, not EOVERFLOW.
        var past = await FailsWithAsync(ErrorCode.EINVAL, () => context.MapAsync(space, buffer, Access.Read, iova: 0x1_0000_0000UL));
        Assert.Contains("aperture", past.Message);
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapAsync(space, buffer, Access.Read, iova: 0xFEE0_0000));
    }

    [Fact]
    public async Task Allowed_iovas_steer_automatic_maps_and_refuse_a_narrowing_attach()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var space = await context.CreateAddressSpaceAsync();
        var buffer = await context.AllocateAsync(16384);

        await context.AllowIovasAsync(space, [new(0x1_0000_0000, 0x1_0000_FFFF)]);
        var chosen = await context.MapAsync(space, buffer, Access.ReadWrite);

        Assert.InRange(chosen.Value, 0x1_0000_0000UL, 0x1_0000_FFFFUL);
        await FailsWithAsync(ErrorCode.EADDRINUSE, () => context.AttachAsync(space)); // the aperture would cut the allowed range off
        await context.UnmapAsync(space, chosen, 16384);
        await context.AllowIovasAsync(space, []);
        await context.AttachAsync(space);
        await FailsWithAsync(ErrorCode.EADDRINUSE, () => context.AllowIovasAsync(space, [new(0xFEE0_0000, 0xFEE0_FFFF)]));
    }

    [Fact]
    public async Task A_reserved_hole_is_skipped_by_automatic_maps_and_refused_to_fixed_ones()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var buffer = await context.AllocateAsync(16384);

        await context.ReserveIovasAsync(space, new(0, 0xFFFF_FFF));

        Assert.True((await context.MapAsync(space, buffer, Access.Read)).Value >= 0x1000_0000UL);
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapAsync(space, buffer, Access.Read, iova: 0x4000));
        var ranges = await context.GetIovaRangesAsync(space);
        Assert.Equal(0x1000_0000UL, ranges.Ranges[0].Start);
    }

    [Fact]
    public async Task Copying_a_mapping_reaches_the_same_memory_through_another_address_space()
    {
        var (context, first) = await OpenAttachedAsync(0);
        var second = await context.CreateAddressSpaceAsync();
        var a = await context.AllocateAsync(16384);
        var b = await context.AllocateAsync(16384);
        await context.MapAsync(first, a, Access.ReadWrite, iova: 0x10_0000);
        await context.MapAsync(first, b, Access.Read, iova: 0x10_4000);
        await context.WriteAsync(b, 0, new byte[] { 42 });

        var copied = await context.CopyMappingAsync(first, 0x10_0000, 0x8000, second, Access.Read);
        await context.WriteAsync(a, 100, new byte[] { 7 });

        Assert.Equal(new byte[] { 7 }, await context.ReadIovaAsync(second, copied + 100, 1));
        Assert.Equal(new byte[] { 42 }, await context.ReadIovaAsync(second, copied + 0x4000, 1));
        await FailsWithAsync(ErrorCode.EPERM, () => context.CopyMappingAsync(first, 0x10_0000, 0x8000, second, Access.ReadWrite));
        await FailsWithAsync(ErrorCode.ENOENT, () => context.CopyMappingAsync(first, 0x10_0000, 0xC000, second, Access.Read));
        // Each copy is a mapping of its buffer: it must be unmapped before the buffer may be freed.
        await FailsWithAsync(ErrorCode.EINVAL, () => context.FreeAsync(a));
        await context.UnmapAsync(second, 0, ulong.MaxValue);
        await context.UnmapAsync(first, 0, ulong.MaxValue);
        await context.FreeAsync(a);
    }
}
