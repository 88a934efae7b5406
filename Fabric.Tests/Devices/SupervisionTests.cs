using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>
/// Supervision, with faults injected inside real actors (serialize-messages on): a failing context, address space,
/// export or device is stopped — never restarted with lost handles — its client hears EIO naming the exception's
/// type, everything it held is released, importers of what it exported are told, and the rest carries on.
/// </summary>
public sealed class SupervisionTests(ITestOutputHelper output) : DeviceStackTest(output, SmallDevice(), SmallDevice(), SmallDevice())
{
    private async Task AwaitBaselineAsync(params int[] devices)
    {
        foreach (var device in devices)
            await AwaitAssertAsync(async () =>
            {
                var info = await InfoAsync(device);
                Assert.Equal((0L, 0, 0, 0, 0, 0), (info.MemoryUsed, info.Allocations, info.OpenContexts, info.Exports, info.Imports, info.Waiters));
            }, Wait, TimeSpan.FromMilliseconds(20));
    }

    /// <summary>A context on device 0 holding two buffers (one mapped, one exported) and an importer of the export on device 1.</summary>
    private async Task<(DeviceContext Victim, AddressSpaceId Space, BufferHandle Exported, DeviceContext Importer, BufferHandle Imported)> VictimAsync()
    {
        var (victim, space) = await OpenAttachedAsync(0);
        await BufferWithAsync(victim, space, new byte[8192]);
        var exported = await victim.AllocateAsync(4096);
        await victim.WriteAsync(exported, 0, new byte[] { 9, 8, 7 });
        var token = (await victim.ExportAsync(exported)).Token;
        var importer = await Client.OpenAsync(Dev(1));
        var imported = (await importer.ImportAsync(token)).Handle;
        Assert.Equal(new byte[] { 9, 8, 7 }, await importer.ReadAsync(imported, 0, 3));
        return (victim, space, exported, importer, imported);
    }

    /// <summary>A context next to the failed one on the same device: it allocates, maps, computes and reads back.</summary>
    private async Task BystanderWorksAsync(DeviceContext bystander, AddressSpaceId space)
    {
        var (handle, iova) = await BufferWithAsync(bystander, space, new byte[4096]);
        await bystander.RunAsync(new CommandBufferBuilder().Fill(iova, 4096, 0x5A5A5A5A).Build(), Wait);
        Assert.All(await bystander.ReadAsync(handle, 0, 4096), b => Assert.Equal(0x5A, b));
    }

    [Fact]
    public async Task A_context_that_throws_mid_map_is_stopped_its_client_told_EIO_and_everything_released()
    {
        var (bystander, bystanderSpace) = await OpenAttachedAsync(0);
        var (victim, space, exported, importer, imported) = await VictimAsync();
        Watch(victim.Actor);
        Faults.Arm(FaultPlan.Sites.ContextMap);

        var failed = await FailsWithAsync(ErrorCode.EIO, () => victim.MapAsync(space, exported, Access.Read));

        Assert.Contains(victim.Id.ToString(), failed.Message);
        Assert.Contains(nameof(InjectedFault), failed.Message);
        await ExpectTerminatedAsync(victim.Actor);
        var later = await FailsWithAsync(ErrorCode.EIO, () => victim.AllocateAsync(4096));
        Assert.Contains(nameof(InjectedFault), later.Message);
        // The failed context's exports are revoked: its importer is told, and reads fail instead of seeing stale memory.
        await AwaitAssertAsync(async () => await FailsWithAsync(ErrorCode.EIO, () => importer.ReadAsync(imported, 0, 3)), Wait);
        await BystanderWorksAsync(bystander, bystanderSpace);
        await importer.CloseAsync();
        await bystander.CloseAsync();
        await victim.DisposeAsync();
        await AwaitBaselineAsync(0, 1);
    }

    [Fact]
    public async Task An_address_space_that_throws_mid_map_stops_its_context_and_everything_is_released()
    {
        var (bystander, bystanderSpace) = await OpenAttachedAsync(0);
        var (victim, space, _, importer, imported) = await VictimAsync();
        var extra = await victim.AllocateAsync(4096);
        Watch(victim.Actor);
        Faults.Arm(FaultPlan.Sites.AddressSpaceMap);

        var failed = await FailsWithAsync(ErrorCode.EIO, () => victim.MapAsync(space, extra, Access.ReadWrite));

        Assert.Contains($"as-{space.Value}", failed.Message);
        Assert.Contains(nameof(InjectedFault), failed.Message);
        await ExpectTerminatedAsync(victim.Actor);
        await FailsWithAsync(ErrorCode.EIO, () => victim.ReadAsync(extra, 0, 16));
        await AwaitAssertAsync(async () => await FailsWithAsync(ErrorCode.EIO, () => importer.ReadAsync(imported, 0, 3)), Wait);
        await BystanderWorksAsync(bystander, bystanderSpace);
        await importer.CloseAsync();
        await bystander.CloseAsync();
        await AwaitBaselineAsync(0, 1);
    }

    [Fact]
    public async Task An_export_that_throws_mid_attach_fails_the_import_tells_its_importers_and_releases_its_memory()
    {
        var (exporter, space, exported, importer, imported) = await VictimAsync();
        var second = await Client.OpenAsync(Dev(2));
        var token = (await exporter.ExportAsync(exported)).Token; // a second export of the same buffer, to fail
        var survivor = await second.ImportAsync(token);
        Faults.Arm(FaultPlan.Sites.ExportAttach);

        var failed = await FailsWithAsync(ErrorCode.EIO, () => importer.ImportAsync(token));

        Assert.Contains(token.Export.ToString(), failed.Message);
        Assert.Contains(nameof(InjectedFault), failed.Message);
        await AwaitAssertAsync(async () => await FailsWithAsync(ErrorCode.EIO, () => second.ReadAsync(survivor.Handle, 0, 3)), Wait);
        // The exporter's context did not fail: its buffer, and the other export of it, still work.
        Assert.Equal(new byte[] { 9, 8, 7 }, await exporter.ReadAsync(exported, 0, 3));
        Assert.Equal(new byte[] { 9, 8, 7 }, await importer.ReadAsync(imported, 0, 3));
        await AwaitAssertAsync(async () => Assert.Equal(1, (await exporter.GetInfoAsync()).Exports), Wait);
        await second.CloseAsync();
        await importer.CloseAsync();
        await exporter.CloseAsync();
        await AwaitBaselineAsync(0, 1, 2);
    }

    [Fact]
    public async Task A_device_that_throws_is_stopped_reported_as_malfunction_and_the_other_devices_carry_on()
    {
        var (victim, space) = await OpenAttachedAsync(0);
        var (_, iova) = await BufferWithAsync(victim, space, new byte[4096]);
        var exported = await victim.AllocateAsync(4096);
        var importer = await Client.OpenAsync(Dev(1));
        var imported = (await importer.ImportAsync((await victim.ExportAsync(exported)).Token)).Handle;
        Watch(victim.Actor);
        Faults.Arm(FaultPlan.Sites.DeviceEnqueue);

        var failed = await FailsWithAsync(ErrorCode.EIO, () => victim.SubmitAsync(new CommandBufferBuilder().Fill(iova, 4096, 1).Build()));

        Assert.Contains(Dev(0).ToString(), failed.Message);
        Assert.Contains(nameof(InjectedFault), failed.Message);
        await ExpectTerminatedAsync(victim.Actor);
        var info = await InfoAsync(0);
        Assert.Equal(DeviceStatus.Malfunction, info.Status);
        Assert.Contains(nameof(InjectedFault), info.Failure);
        var listed = (await Client.ListDevicesAsync()).Single(d => d.Id == Dev(0));
        Assert.Equal(DeviceStatus.Malfunction, listed.Status);
        var open = await FailsWithAsync(ErrorCode.ENODEV, () => Client.OpenAsync(Dev(0)));
        Assert.Contains("failed", open.Message);
        await AwaitAssertAsync(async () => await FailsWithAsync(ErrorCode.EIO, () => importer.ReadAsync(imported, 0, 3)), Wait);
        var (bystander, bystanderSpace) = await OpenAttachedAsync(1);
        await BystanderWorksAsync(bystander, bystanderSpace);
        await bystander.CloseAsync();
        await importer.CloseAsync();
        await AwaitBaselineAsync(1);
    }

    [Fact]
    public async Task A_removed_device_tears_its_contexts_down_and_answers_ENODEV()
    {
        var (context, space) = await OpenAttachedAsync(2);
        await BufferWithAsync(context, space, new byte[4096]);
        Watch(context.Actor);

        Devices.Tell(new DeviceManager.RemoveDevice(Dev(2)), Akka.Actor.ActorRefs.NoSender);

        await ExpectTerminatedAsync(context.Actor);
        var gone = await FailsWithAsync(ErrorCode.ENODEV, () => context.AllocateAsync(4096));
        Assert.Contains("removed", gone.Message);
        await AwaitAssertAsync(async () => Assert.Equal(DeviceStatus.Removed, (await InfoAsync(2)).Status), Wait);
        await FailsWithAsync(ErrorCode.ENODEV, () => Client.OpenAsync(Dev(2)));
    }

    [Fact]
    public async Task Requests_that_meet_a_device_while_it_is_removed_are_all_answered()
    {
        var (context, space) = await OpenAttachedAsync(2);
        await BufferWithAsync(context, space, new byte[4096]);

        // Fired back to back with the removal: some reach the device before it is gone, some the manager after, and
        // some the manager while the device retires; each is answered (Operational, Removed or ENODEV), none lost.
        Devices.Tell(new DeviceManager.RemoveDevice(Dev(2)), Akka.Actor.ActorRefs.NoSender);
        var reads = Enumerable.Range(0, 200).Select(async _ =>
        {
            try { return (await InfoAsync(2)).Status.ToString(); }
            catch (FabricException e) { return e.Error.Code.ToString(); }
        }).ToList();
        var answers = await Task.WhenAll(reads);

        Assert.All(answers, a => Assert.Contains(a, new[] { nameof(DeviceStatus.Operational), nameof(DeviceStatus.Removed), nameof(ErrorCode.ENODEV) }));
        await AwaitAssertAsync(async () => Assert.Equal(DeviceStatus.Removed, (await InfoAsync(2)).Status), Wait);
    }
}
