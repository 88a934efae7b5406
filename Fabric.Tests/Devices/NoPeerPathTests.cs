using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Devices;

namespace Fabric.Tests.Devices;

/// <summary>
/// Two nodes (ActorSystems with remoting on 127.0.0.1) whose device stacks serve no data plane: an import of the
/// other node's export has no peer-to-peer path. Like a dma-buf importer without <c>allow_peer2peer</c>, it attaches,
/// and fails when it maps or uses the memory (EPERM) — not at import.
/// </summary>
public sealed class NoPeerPathTests : IAsyncLifetime
{
    private readonly ActorSystem _a = FabricClientSystem.Create(name: "node-a");
    private readonly ActorSystem _b = FabricClientSystem.Create(name: "node-b");
    private static readonly DeviceProfile Small = new() { MemoryBytes = 4L << 20, Queues = 1 };

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _a.Terminate();
        await _b.Terminate();
    }

    [Fact]
    public async Task An_import_without_a_peer_path_attaches_and_fails_with_EPERM_when_mapped_or_used()
    {
        var managerA = FabricDevices.Start(_a, "a", [Small]);
        var managerB = FabricDevices.Start(_b, "b", [Small]);
        var address = ((ExtendedActorSystem)_b).Provider.DefaultAddress;
        var bSeenFromA = await _a.ActorSelection(new RootActorPath(address) / "user" / FabricDevices.ManagerName).ResolveOne(TimeSpan.FromSeconds(10));
        managerA.Tell(new DeviceManager.PeersChanged(ImmutableDictionary<string, IActorRef>.Empty.Add("b", bSeenFromA), []), ActorRefs.NoSender);
        await using var exporterClient = FabricClient.Connect(_b, managerB);
        await using var importerClient = FabricClient.Connect(_a, managerA);
        var exporter = await exporterClient.OpenAsync(new DeviceId("b", 0));
        var buffer = await exporter.AllocateAsync(4096);
        var token = (await exporter.ExportAsync(buffer)).Token;
        var importer = await importerClient.OpenAsync(new DeviceId("a", 0));
        var space = await importer.CreateAddressSpaceAsync();
        await importer.AttachAsync(space);

        var imported = await importer.ImportAsync(token);

        Assert.Equal(4096, imported.Size);
        Assert.Equal(1, (await importer.GetInfoAsync()).Imports);
        var map = await Assert.ThrowsAsync<FabricException>(() => importer.MapAsync(space, imported.Handle, Access.Read));
        Assert.Equal(ErrorCode.EPERM, map.Code);
        Assert.Contains("data plane", map.Error.Message);
        var read = await Assert.ThrowsAsync<FabricException>(() => importer.ReadAsync(imported.Handle, 0, 16));
        Assert.Equal(ErrorCode.EPERM, read.Code);
        await importer.FreeAsync(imported.Handle); // detaches: the exporter's device no longer counts an attachment
        Assert.Equal(0, (await importer.GetInfoAsync()).Imports);
    }
}
