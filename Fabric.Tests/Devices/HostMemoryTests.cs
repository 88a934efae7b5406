using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>
/// Host memory mapped for the device (habanalabs userptr): with the client in the node's process the device reads and
/// writes the client's own memory; an unmap wins over work in flight and leaves the memory the client's again; a close
/// releases it; host memory is never device memory and cannot be exported.
/// </summary>
public sealed class HostMemoryTests(ITestOutputHelper output) : DeviceStackTest(output,
    new DeviceProfile { MemoryBytes = 32L << 20, Queues = 2 })
{
    private const int Page = 4096;

    [Fact]
    public async Task The_device_reads_and_writes_the_clients_own_memory_without_a_copy()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var bytes = new byte[2 * Page];
        for (var i = 0; i < Page / 4; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), (float)i);
        var memory = new Memory<byte>(bytes);
        float At(int i) => BitConverter.ToSingle(bytes, i * 4);
        await using var mapping = await context.MapHostMemoryAsync(space, memory, Access.ReadWrite);
        Assert.True(mapping.ZeroCopy);
        var usedBefore = (await InfoAsync(0)).MemoryUsed;

        // The host changes its memory after the map; the device sees it, with no sync.
        BitConverter.TryWriteBytes(bytes.AsSpan(3 * 4), 100f);
        await context.RunAsync(new CommandBufferBuilder().Scale(mapping.Iova + Page, mapping.Iova, Page / 4, 2f).Build(), Wait);

        // What the device wrote is in the host memory itself.
        Assert.Equal(200f, At(Page / 4 + 3));
        Assert.Equal(2f * 7, At(Page / 4 + 7));
        Assert.Equal(2f * (Page / 4 - 1), At(Page / 4 + Page / 4 - 1));
        // Pinning host memory takes no device memory, and reads through the handle see the same bytes.
        Assert.Equal(usedBefore, (await InfoAsync(0)).MemoryUsed);
        Assert.Equal(memory.Slice(Page, 64).ToArray(), await context.ReadAsync(mapping.Handle, Page, 64));
    }

    [Fact]
    public async Task An_unmap_stops_the_devices_users_and_the_memory_is_the_clients_again()
    {
        var (context, space) = await OpenAttachedAsync(0);
        const int n = 1024;
        var matrix = await context.AllocateAsync(n * n * 4);
        var a = await context.MapAsync(space, matrix, Access.ReadWrite);
        var memory = new Memory<byte>(new byte[n * n * 4]);
        var mapping = await context.MapHostMemoryAsync(space, memory, Access.ReadWrite);
        var commands = new CommandBufferBuilder();
        for (var i = 0; i < 16; i++) commands.MatMul(mapping.Iova, a, a, n, n, n);
        var running = await context.SubmitAsync(commands.Build());
        var queued = await context.SubmitAsync(new CommandBufferBuilder().Fill(mapping.Iova, Page, 0x01010101).Build());

        await mapping.UnmapAsync();

        Assert.True(mapping.Released.IsCompletedSuccessfully, "the unmap returned while the device still held the memory");
        var (first, second) = (await context.WaitAsync(running.Fence, TimeSpan.Zero), await context.WaitAsync(queued.Fence, TimeSpan.Zero));
        Assert.Equal((FenceState.Failed, ErrorCode.EFAULT), (first.State, first.Error!.Code));
        Assert.Equal((FenceState.Failed, ErrorCode.EFAULT), (second.State, second.Error!.Code));
        // No device write lands after the unmap: the queued fill never ran, and the memory stays as it is now.
        var now = memory.ToArray();
        await Task.Delay(50);
        Assert.Equal(now, memory.ToArray());
        Assert.NotEqual(0x01, memory.Span[0]);
        await FailsWithAsync(ErrorCode.EFAULT, () => context.SubmitAsync(new CommandBufferBuilder().Fill(mapping.Iova, Page, 1).Build()));
        await FailsWithAsync(ErrorCode.EINVAL, () => context.FreeAsync(mapping.Handle));
    }

    [Fact]
    public async Task A_close_releases_pinned_host_memory()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var mapping = await context.MapHostMemoryAsync(space, new byte[4 * Page], Access.Write);
        Assert.False(mapping.Released.IsCompleted);

        await context.CloseAsync();

        await mapping.Released.WaitAsync(Wait);
        await mapping.DisposeAsync(); // nothing left to release: not an error
    }

    [Fact]
    public async Task Bad_pins_are_refused_and_host_memory_cannot_be_exported()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var odd = await FailsWithAsync(ErrorCode.EINVAL, () => context.MapHostMemoryAsync(space, new byte[Page + 100], Access.ReadWrite));
        Assert.Contains("multiple of", odd.Message);
        Assert.Contains($"{Page} bytes", odd.Message);
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapHostMemoryAsync(space, new byte[Page], Access.None));
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapHostMemoryAsync(space, new byte[Page], (Access)4));
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MapHostMemoryAsync(space, Memory<byte>.Empty, Access.Read));

        var readOnly = await context.MapHostMemoryAsync(space, new byte[Page], Access.Read);
        var export = await FailsWithAsync(ErrorCode.EINVAL, () => context.ExportAsync(readOnly.Handle, Access.Read));
        Assert.Contains("only device memory", export.Message);
        // The device may only read a read-only pin: a second mapping for writing is EPERM, a write through it EPERM.
        await FailsWithAsync(ErrorCode.EPERM, () => context.MapAsync(space, readOnly.Handle, Access.ReadWrite));
        await FailsWithAsync(ErrorCode.EPERM, () => context.RunAsync(new CommandBufferBuilder().Fill(readOnly.Iova, Page, 1).Build(), Wait));
        await readOnly.UnmapAsync();
        var info = await context.GetInfoAsync();
        Assert.Equal(0, info.Buffers);
    }
}
