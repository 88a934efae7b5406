using Fabric.Core;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>Address spaces through the actors: iommufd IOAS rules, IOMMU groups, PASID-style spaces per context.</summary>
public sealed class AddressSpaceTests(ITestOutputHelper output)
    : DeviceStackTest(output, SmallDevice(group: 10), SmallDevice(group: 10), SmallDevice())
{
    [Fact]
    public async Task Attaching_a_device_whose_group_mate_is_attached_elsewhere_fails_with_EBUSY_naming_both()
    {
        var (holder, _) = await OpenAttachedAsync(0);
        await using var other = await Client.OpenAsync(Dev(1));
        var space = await other.CreateAddressSpaceAsync();

        var error = await FailsWithAsync(ErrorCode.EBUSY, () => other.AttachAsync(space));

        Assert.Contains("t/dev1", error.Message);
        Assert.Contains("t/dev0", error.Message);
        Assert.Contains(holder.Id.ToString(), error.Message);
        Assert.Contains("group 10", error.Message);
    }

    [Fact]
    public async Task The_group_is_free_again_once_the_holder_detaches_or_closes()
    {
        var (holder, holderSpace) = await OpenAttachedAsync(0);
        await using var other = await Client.OpenAsync(Dev(1));
        var space = await other.CreateAddressSpaceAsync();

        await holder.DetachAsync(holderSpace);
        await other.AttachAsync(space);
        await other.DetachAsync(space);
        await holder.AttachAsync(holderSpace);
        await FailsWithAsync(ErrorCode.EBUSY, () => other.AttachAsync(space));
        await holder.CloseAsync();

        await AwaitAssertAsync(() => other.AttachAsync(space), Wait);
    }

    [Fact]
    public async Task Several_contexts_on_one_device_each_attach_their_own_address_space()
    {
        var (first, firstSpace) = await OpenAttachedAsync(0);
        var (second, secondSpace) = await OpenAttachedAsync(0);
        var (a, _) = await BufferWithAsync(first, firstSpace, [1, 1, 1, 1]);
        var (b, _) = await BufferWithAsync(second, secondSpace, [2, 2, 2, 2]);

        // Same IOVA in two spaces, each its own memory.
        var iovaA = await first.MapAsync(firstSpace, a, Access.Read, iova: 0x100000);
        var iovaB = await second.MapAsync(secondSpace, b, Access.Read, iova: 0x100000);

        Assert.Equal(iovaA, iovaB);
        Assert.Equal([1, 1, 1, 1], await first.ReadIovaAsync(firstSpace, 0x100000, 4));
        Assert.Equal([2, 2, 2, 2], await second.ReadIovaAsync(secondSpace, 0x100000, 4));
        await second.UnmapAsync(secondSpace, iovaB, 4096);
        Assert.Equal([1, 1, 1, 1], await first.ReadIovaAsync(firstSpace, 0x100000, 4));
        await FailsWithAsync(ErrorCode.ENOENT, () => second.ReadIovaAsync(secondSpace, 0x100000, 4));
    }

    [Fact]
    public async Task A_fixed_mapping_that_overlaps_a_live_one_fails_with_EEXIST_and_replaces_nothing()
    {
        var (context, space) = await OpenAttachedAsync(2);
        var first = await context.AllocateAsync(8192);
        var second = await context.AllocateAsync(8192);
        await context.MapAsync(space, first, Access.ReadWrite, iova: 0x10000);
        await context.WriteIovaAsync(space, 0x11000, new byte[] { 9 });

        await FailsWithAsync(ErrorCode.EEXIST, () => context.MapAsync(space, second, Access.ReadWrite, iova: 0x11000));

        Assert.Equal([9], await context.ReadIovaAsync(space, 0x11000, 1));
        Assert.Equal([9], await context.ReadAsync(first, 0x1000, 1));
    }

    [Fact]
    public async Task Chosen_IOVAs_are_never_zero_and_aligned_to_the_length()
    {
        var (context, space) = await OpenAttachedAsync(2);
        var small = await context.AllocateAsync(4096);
        var big = await context.AllocateAsync(64 << 10);

        var smallIova = await context.MapAsync(space, small, Access.Read);
        var bigIova = await context.MapAsync(space, big, Access.Read);

        Assert.NotEqual(0UL, smallIova.Value);
        Assert.Equal(0UL, bigIova % (64 << 10));
    }

    [Fact]
    public async Task Unmap_that_would_split_a_mapping_fails_with_ENOENT_and_changes_nothing()
    {
        var (context, space) = await OpenAttachedAsync(2);
        var (_, iova) = await BufferWithAsync(context, space, new byte[8192]);

        await FailsWithAsync(ErrorCode.ENOENT, () => context.UnmapAsync(space, iova, 4096));

        Assert.Equal(new byte[4], await context.ReadIovaAsync(space, iova + 4096, 4));
        Assert.Equal(8192UL, await context.UnmapAsync(space, iova, 8192));
    }

    [Fact]
    public async Task Unmap_of_everything_succeeds_even_when_empty_and_reports_mapped_bytes()
    {
        var (context, space) = await OpenAttachedAsync(2);
        await BufferWithAsync(context, space, new byte[4096]);
        await BufferWithAsync(context, space, new byte[8192]);

        Assert.Equal(12288UL, await context.UnmapAsync(space, 0, ulong.MaxValue));
        Assert.Equal(0UL, await context.UnmapAsync(space, 0, ulong.MaxValue));
    }

    [Theory]
    [InlineData(0x1000UL, 0L, Access.ReadWrite, ErrorCode.EINVAL)]   // length 0
    [InlineData(0x1000UL, 4096L, Access.None, ErrorCode.EINVAL)]     // no permission
    [InlineData(0x1800UL, 4096L, Access.Read, ErrorCode.EINVAL)]     // IOVA not page aligned
    [InlineData(0x1000UL, 100L, Access.Read, ErrorCode.EINVAL)]      // length not page aligned
    [InlineData(0xFFFFFFFFFFFFF000UL, 8192L, Access.Read, ErrorCode.EOVERFLOW)] // wraps
    public async Task Bad_map_arguments_get_their_code(ulong iova, long length, Access access, ErrorCode code)
    {
        var (context, space) = await OpenAttachedAsync(2);
        var handle = await context.AllocateAsync(8192);

        await FailsWithAsync(code, () => context.MapAsync(space, handle, access, iova: iova, length: length));

        Assert.Equal(0UL, await context.UnmapAsync(space, 0, ulong.MaxValue));
    }

    [Fact]
    public async Task Access_through_an_IOVA_checks_permission_and_range()
    {
        var (context, space) = await OpenAttachedAsync(2);
        var handle = await context.AllocateAsync(4096);
        var iova = await context.MapAsync(space, handle, Access.Read);

        var write = await FailsWithAsync(ErrorCode.EPERM, () => context.WriteIovaAsync(space, iova, new byte[] { 1 }));
        await FailsWithAsync(ErrorCode.ENOENT, () => context.ReadIovaAsync(space, iova + 4000, 200));
        await FailsWithAsync(ErrorCode.ENOENT, () => context.ReadIovaAsync(space, 0x7000_0000, 4));

        Assert.Contains("as-1", write.Message);
        Assert.Equal(new byte[4], await context.ReadIovaAsync(space, iova + 4092, 4));
    }

    [Fact]
    public async Task Destroying_a_space_with_the_device_attached_fails_with_EBUSY_and_with_mappings_only_succeeds()
    {
        var (context, space) = await OpenAttachedAsync(2);
        var (handle, _) = await BufferWithAsync(context, space, new byte[4096]);

        await FailsWithAsync(ErrorCode.EBUSY, () => context.DestroyAddressSpaceAsync(space));
        await context.DetachAsync(space);
        await context.DestroyAddressSpaceAsync(space);

        await context.FreeAsync(handle); // the destroyed space no longer maps it
        await FailsWithAsync(ErrorCode.ENOENT, () => context.ReadIovaAsync(space, 0x1000, 1));
    }

    [Fact]
    public async Task Unmapping_exported_memory_fails_with_EINVAL_until_the_export_is_revoked()
    {
        var (context, space) = await OpenAttachedAsync(2);
        var (handle, iova) = await BufferWithAsync(context, space, new byte[4096]);
        var exported = await context.ExportAsync(handle);

        await FailsWithAsync(ErrorCode.EINVAL, () => context.UnmapAsync(space, iova, 4096));
        await context.RevokeAsync(exported.Token.Export);

        await AwaitAssertAsync(async () => Assert.Equal(4096UL, await context.UnmapAsync(space, iova, 4096)), Wait);
    }
}
