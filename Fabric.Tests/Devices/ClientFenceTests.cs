using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>Fences a client owns (sync_file / drm_syncobj): signal, stub, merge, timelines, and release with the client.</summary>
public sealed class ClientFenceTests(ITestOutputHelper output) : DeviceStackTest(output)
{
    private static readonly TimeSpan Brief = TimeSpan.FromMilliseconds(200);

    [Fact]
    public async Task A_submission_waits_on_a_client_fence_until_the_client_signals_it()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var (handle, iova) = await BufferWithAsync(context, space, new byte[4096]);
        var gate = await context.CreateFenceAsync();
        var waiter = FabricClient.Connect(Sys, Devices);

        var submitted = await context.SubmitAsync(new CommandBufferBuilder().WaitFence(0).Fill(iova, 4096, 0x0B0B0B0B).Build(), inFences: [gate]);
        Assert.Equal(FenceState.Busy, (await waiter.WaitAsync(submitted.Fence, Brief)).State);
        Assert.Equal(new byte[4], await context.ReadAsync(handle, 0, 4));

        await context.SignalFenceAsync(gate);

        Assert.Equal(FenceState.Completed, (await context.WaitAsync(submitted.Fence, Wait)).State);
        Assert.Equal(new byte[] { 11, 11, 11, 11 }, await context.ReadAsync(handle, 0, 4));
        await FailsWithAsync(ErrorCode.EINVAL, () => context.SignalFenceAsync(gate)); // a fence signals once
    }

    [Fact]
    public async Task Only_the_owner_signals_its_fence_and_an_error_reaches_the_waiters()
    {
        await using var owner = await Client.OpenAsync(Dev(0));
        await using var other = await Client.OpenAsync(Dev(0));
        var fence = await owner.CreateFenceAsync();
        var (device, _) = await OpenAttachedAsync(0);
        var deviceFence = (await device.SubmitAsync(new CommandBufferBuilder().Build())).Fence;

        await FailsWithAsync(ErrorCode.EPERM, () => other.SignalFenceAsync(fence));
        await FailsWithAsync(ErrorCode.EPERM, () => owner.SignalFenceAsync(deviceFence));
        await owner.SignalFenceAsync(fence, new FabricError(ErrorCode.EIO, "the producer gave up"));

        var status = await other.WaitAsync(fence, Wait);
        Assert.Equal(FenceState.Failed, status.State);
        Assert.Contains("the producer gave up", status.Error!.Message);
    }

    [Fact]
    public async Task A_stub_is_signalled_already_and_a_merge_signals_when_all_inputs_have()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        await using var elsewhere = await Client.OpenAsync(Dev(1));
        var stub = await context.CreateFenceAsync(signalled: true);
        var a = await context.CreateFenceAsync();
        var b = await elsewhere.CreateFenceAsync(); // another device's fence

        var merged = await context.MergeFencesAsync([stub, a, b]);
        await context.SignalFenceAsync(a);
        Assert.Equal(FenceState.Completed, (await Client.WaitAsync(stub, TimeSpan.Zero)).State);
        Assert.Equal(FenceState.Busy, (await Client.WaitAsync(merged, Brief)).State);
        await elsewhere.SignalFenceAsync(b, new FabricError(ErrorCode.EIO, "b failed"));

        var status = await Client.WaitAsync(merged, Wait);
        Assert.Equal(FenceState.Failed, status.State);
        Assert.Contains("b failed", status.Error!.Message);
        await FailsWithAsync(ErrorCode.EINVAL, () => context.MergeFencesAsync(Enumerable.Repeat(stub, DeviceRequests.MaxWaitFences + 1)));
    }

    [Fact]
    public async Task Timeline_points_signal_in_order()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var one = await context.CreateFenceAsync(timeline: 7, point: 1);
        var two = await context.CreateFenceAsync(timeline: 7, point: 2);
        var three = await context.CreateFenceAsync(timeline: 7, point: 3);
        await FailsWithAsync(ErrorCode.EINVAL, () => context.CreateFenceAsync(timeline: 7, point: 2));

        await context.SignalFenceAsync(three);
        await context.SignalFenceAsync(two);
        Assert.Equal(FenceState.Busy, (await Client.WaitAsync(two, Brief)).State);
        Assert.Equal(FenceState.Busy, (await Client.WaitAsync(three, TimeSpan.Zero)).State);

        await context.SignalFenceAsync(one);

        foreach (var point in new[] { one, two, three })
            Assert.Equal(FenceState.Completed, (await Client.WaitAsync(point, Wait)).State);
    }

    [Fact]
    public async Task A_clients_death_signals_its_unsignalled_fences_with_an_error()
    {
        var client = FabricClient.Connect(Sys, Devices);
        var context = await client.OpenAsync(Dev(0));
        var fence = await context.CreateFenceAsync();
        var point = await context.CreateFenceAsync(timeline: 1, point: 5);
        var wait = Client.WaitAsync(fence, Wait);

        await client.Session.GracefulStop(Wait);

        var status = await wait;
        Assert.Equal(FenceState.Failed, status.State);
        Assert.Equal(FenceState.Failed, (await Client.WaitAsync(point, Wait)).State);
    }
}
