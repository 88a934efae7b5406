using System.Diagnostics;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>
/// Per-context limits (issue 13): a context at its limit of buffers, mappings or pending submissions is refused with
/// ENOSPC / EBUSY and a sentence naming it, its count and the limit; nothing else changes; releases make room; other
/// contexts of the same device are served meanwhile. Fence waits reach the device without a context: they are limited
/// per waiting client.
/// </summary>
public sealed class ResourceLimitTests(ITestOutputHelper output) : DeviceStackTest(output,
    new DeviceProfile
    {
        MemoryBytes = 16L << 20,
        Queues = 2,
        MaxBuffersPerContext = 4,
        MaxMappingsPerContext = 3,
        MaxPendingSubmissionsPerContext = 4,
        MaxFenceWaitersPerClient = 3
    },
    new DeviceProfile { MemoryBytes = 32L << 20, Queues = 2, MaxPendingSubmissionsPerContext = 16 })
{
    private const int Page = 4096;

    [Fact]
    public async Task The_buffer_past_the_limit_is_refused_with_ENOSPC_and_a_free_makes_room()
    {
        var context = await Client.OpenAsync(Dev(0));
        var handles = new List<BufferHandle>();
        for (var i = 0; i < 4; i++) handles.Add(await context.AllocateAsync(Page));
        var used = (await InfoAsync(0)).MemoryUsed;

        var refused = await FailsWithAsync(ErrorCode.ENOSPC, () => context.AllocateAsync(Page));
        Assert.Equal($"context {Dev(0)}/{context.Id} holds 4 buffers, its limit: allocate fewer or free some", refused.Message);
        Assert.Equal(used, (await InfoAsync(0)).MemoryUsed); // no memory taken for the refused allocation
        Assert.Equal(4, (await context.GetInfoAsync()).Buffers);

        // An import is a handle too: refused before it attaches.
        var other = await Client.OpenAsync(Dev(0));
        var exported = await other.ExportAsync(await other.AllocateAsync(Page));
        var import = await FailsWithAsync(ErrorCode.ENOSPC, () => context.ImportAsync(exported.Token));
        Assert.Contains("holds 4 buffers", import.Message);

        await context.FreeAsync(handles[0]);
        var again = await context.AllocateAsync(Page);
        Assert.NotEqual(handles[0], again);
        await FailsWithAsync(ErrorCode.ENOSPC, () => context.AllocateAsync(Page)); // full again, at exactly 4
        await context.FreeAsync(handles[1]);
        var imported = await context.ImportAsync(exported.Token);
        Assert.Equal(Page, imported.Size);
    }

    [Fact]
    public async Task A_second_context_allocates_normally_while_the_first_is_at_its_buffer_limit()
    {
        var full = await Client.OpenAsync(Dev(0));
        for (var i = 0; i < 4; i++) await full.AllocateAsync(Page);
        await FailsWithAsync(ErrorCode.ENOSPC, () => full.AllocateAsync(Page));

        var (other, space) = await OpenAttachedAsync(0);
        var (handle, _) = await BufferWithAsync(other, space, [1, 2, 3, 4]);
        Assert.Equal([1, 2, 3, 4], await other.ReadAsync(handle, 0, 4));
        Assert.Equal(1, (await other.GetInfoAsync()).Buffers);
    }

    [Fact]
    public async Task The_mapping_past_the_limit_is_refused_with_ENOSPC_and_an_unmap_makes_room()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var a = await context.AllocateAsync(2 * Page);
        var b = await context.AllocateAsync(Page);
        var first = await context.MapAsync(space, a, Access.ReadWrite);
        await context.MapAsync(space, a, Access.Read); // the same buffer twice: two mappings
        await context.MapAsync(space, b, Access.ReadWrite);

        var refused = await FailsWithAsync(ErrorCode.ENOSPC, () => context.MapAsync(space, b, Access.Read));
        Assert.Equal($"context {Dev(0)}/{context.Id} holds 3 mappings, its limit: map fewer or unmap some", refused.Message);
        // A second address space of the same context shares the count.
        var second = await context.CreateAddressSpaceAsync();
        await FailsWithAsync(ErrorCode.ENOSPC, () => context.MapAsync(second, b, Access.Read));
        await FailsWithAsync(ErrorCode.ENOSPC, () => context.CopyMappingAsync(space, first, 2 * Page, second, Access.Read));

        Assert.Equal(2UL * Page, await context.UnmapAsync(space, first, 2 * Page));
        var iova = await context.MapAsync(second, b, Access.Read);
        await context.WriteAsync(b, 0, new byte[] { 9, 8, 7 });
        Assert.Equal([9, 8, 7], await context.ReadIovaAsync(second, iova, 3));
        await FailsWithAsync(ErrorCode.ENOSPC, () => context.MapAsync(second, a, Access.Read));

        // The refused maps left nothing behind: what is mapped is a's second mapping and b's first, 3 pages.
        Assert.Equal(3UL * Page, await context.UnmapAsync(space, 0, ulong.MaxValue));
        await context.MapAsync(space, a, Access.Read);
        await context.MapAsync(space, a, Access.Read); // the unmap gave both slots back
        await FailsWithAsync(ErrorCode.ENOSPC, () => context.MapAsync(space, b, Access.Read));
    }

    [Fact]
    public async Task The_submission_past_the_pending_limit_is_refused_with_EBUSY_without_a_fence_and_others_are_served()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var (handle, iova) = await BufferWithAsync(context, space, new byte[Page]);
        var gate = await context.CreateFenceAsync();
        var gated = new List<ContextRequests.Submitted>();
        for (var i = 0; i < 4; i++)
            gated.Add(await context.SubmitAsync(new CommandBufferBuilder().WaitFence(0).Fill(iova, Page, 0x01010101u * (uint)(i + 1)).Build(), inFences: [gate]));

        var refused = await FailsWithAsync(ErrorCode.EBUSY,
            () => context.SubmitAsync(new CommandBufferBuilder().Fill(iova, Page, 0x7F7F7F7F).Build(), queue: 1));
        Assert.Equal($"context {Dev(0)}/{context.Id} has 4 submissions pending, its limit; wait for some", refused.Message);

        // Another context of the same device is served at once, and the refusal issued no fence.
        var (other, otherSpace) = await OpenAttachedAsync(0);
        var (otherHandle, otherIova) = await BufferWithAsync(other, otherSpace, new byte[Page]);
        var served = await other.RunAsync(new CommandBufferBuilder().Fill(otherIova, Page, 0x05050505).Build(), Wait, queue: 1);
        Assert.Equal(gated[^1].Fence.Seq + 1, served.Seq);
        Assert.All(await other.ReadAsync(otherHandle, 0, Page), v => Assert.Equal(5, v));
        Assert.All(await context.ReadAsync(handle, 0, Page), v => Assert.Equal(0, v)); // the refused fill never ran

        await context.SignalFenceAsync(gate);
        foreach (var s in gated) Assert.Equal(FenceState.Completed, (await context.WaitAsync(s.Fence, Wait)).State);
        Assert.All(await context.ReadAsync(handle, 0, Page), v => Assert.Equal(4, v)); // the last gated fill ran last
        for (var i = 0; i < 4; i++) await context.RunAsync(new CommandBufferBuilder().Fill(iova, Page, 0x06060606).Build(), Wait);
        Assert.All(await context.ReadAsync(handle, 0, Page), v => Assert.Equal(6, v));
    }

    [Fact]
    public async Task The_fence_wait_past_the_clients_limit_is_refused_with_EBUSY_and_answered_or_cancelled_waits_make_room()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var gate = await context.CreateFenceAsync();
        var other = await context.CreateFenceAsync();
        var waits = Enumerable.Range(0, 2).Select(_ => Client.WaitAsync(gate, Wait)).ToList();
        using var cancel = new CancellationTokenSource();
        var cancelled = Client.WaitAsync(other, Wait, cancel.Token);
        await AwaitAssertAsync(async () => Assert.Equal(3, (await InfoAsync(0)).Waiters), Wait, TimeSpan.FromMilliseconds(20));

        var refused = await FailsWithAsync(ErrorCode.EBUSY, () => Client.WaitAsync(gate, Wait));
        Assert.Equal($"client {Client.Session.Path.Name} has 3 fence waits pending on {Dev(0)}, its limit; wait for some", refused.Message);
        Assert.Equal(FenceState.Busy, (await Client.WaitAsync(gate, TimeSpan.Zero)).State); // a poll adds no waiter: answered
        Assert.Equal(3, (await InfoAsync(0)).Waiters);

        // Another client waits on the same device meanwhile.
        var second = FabricClient.Connect(Sys, Devices);
        var theirs = second.WaitAsync(gate, Wait);
        await AwaitAssertAsync(async () => Assert.Equal(4, (await InfoAsync(0)).Waiters), Wait, TimeSpan.FromMilliseconds(20));

        cancel.Cancel(); // a cancelled wait gives its slot back
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        await AwaitAssertAsync(async () => Assert.Equal(3, (await InfoAsync(0)).Waiters), Wait, TimeSpan.FromMilliseconds(20));
        waits.Add(Client.WaitAsync(gate, Wait));
        await AwaitAssertAsync(async () => Assert.Equal(4, (await InfoAsync(0)).Waiters), Wait, TimeSpan.FromMilliseconds(20));
        await FailsWithAsync(ErrorCode.EBUSY, () => Client.WaitAsync(other, Wait));

        await context.SignalFenceAsync(gate); // answered waits give theirs back
        foreach (var wait in waits) Assert.Equal(FenceState.Completed, (await wait).State);
        Assert.Equal(FenceState.Completed, (await theirs).State);
        Assert.Equal(0, (await InfoAsync(0)).Waiters);
        var again = Enumerable.Range(0, 3).Select(_ => Client.WaitAsync(other, Wait)).ToList();
        await AwaitAssertAsync(async () => Assert.Equal(3, (await InfoAsync(0)).Waiters), Wait, TimeSpan.FromMilliseconds(20));
        await context.SignalFenceAsync(other);
        foreach (var wait in again) Assert.Equal(FenceState.Completed, (await wait).State);
        await second.DisposeAsync();
    }

    [Fact]
    public async Task A_context_flooding_submissions_is_refused_while_another_contexts_fences_stay_prompt()
    {
        var (flooder, floodSpace) = await OpenAttachedAsync(1);
        var big = await flooder.AllocateAsync(4L << 20);
        var bigIova = await flooder.MapAsync(floodSpace, big, Access.ReadWrite);
        var heavy = new CommandBufferBuilder();
        for (var i = 0; i < 4; i++) heavy.Fill(bigIova, 4UL << 20, 0xABABABAB); // 16 MiB of writes: milliseconds, on the pool
        var work = heavy.Build();
        var (victim, victimSpace) = await OpenAttachedAsync(1);
        var (victimHandle, victimIova) = await BufferWithAsync(victim, victimSpace, new byte[Page]);
        await victim.RunAsync(new CommandBufferBuilder().Fill(victimIova, Page, 0).Build(), Wait); // warm, before the flood
        await flooder.RunAsync(work, Wait);

        var victimDone = false;
        var refusedOnce = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (accepted, busy) = (0, 0);
        var expected = $"context {Dev(1)}/{flooder.Id} has 16 submissions pending, its limit; wait for some";
        var flood = Task.Run(async () =>
        {
            for (var round = 0; round < 40 && !Volatile.Read(ref victimDone); round++)
            {
                var results = await Task.WhenAll(Enumerable.Range(0, 100).Select(async _ =>
                {
                    try { await flooder.SubmitAsync(work, queue: 0); return (object?)null; }
                    catch (FabricException e) { return e.Error; }
                }));
                await Task.Delay(1); // the flood is a loop of bursts, not one burst
                foreach (var r in results)
                {
                    if (r is null) accepted++;
                    else if (r is FabricError { Code: ErrorCode.EBUSY } e && e.Message == expected)
                    {
                        busy++;
                        refusedOnce.TrySetResult();
                    }
                    else Assert.Fail($"the flooder got {r}");
                }
            }
        });

        await Task.WhenAny(refusedOnce.Task, flood).WaitAsync(Wait); // measure while the flooder is at its limit
        var latencies = new List<TimeSpan>();
        for (var i = 0; i < 10; i++)
        {
            var clock = Stopwatch.StartNew();
            await victim.RunAsync(new CommandBufferBuilder().Fill(victimIova, Page, 0x01010101u * (uint)(i + 1)).Build(), Wait, queue: 0);
            latencies.Add(clock.Elapsed);
        }
        Volatile.Write(ref victimDone, true);
        await flood.WaitAsync(TimeSpan.FromSeconds(60));

        Output.WriteLine($"flooder: {accepted} accepted, {busy} refused; victim's submit→fence: " +
                         string.Join(", ", latencies.Select(l => $"{l.TotalMilliseconds:0.#}")) + " ms");
        Assert.True(busy > 0, $"the flooder was never refused ({accepted} accepted)");
        Assert.True(accepted >= 16, $"the flooder had only {accepted} accepted");
        Assert.True(latencies.Max() < TimeSpan.FromSeconds(2), $"the victim's slowest submit→fence took {latencies.Max()}");
        Assert.All(await victim.ReadAsync(victimHandle, 0, Page), v => Assert.Equal(10, v));
    }
}
