using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Node.Gateway;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>Three real node processes: enumeration, a remote client, and a client process that dies.</summary>
[Collection(ProcessCollection.Name)]
public sealed class ClusterProcessTests(ClusterFixture cluster, ITestOutputHelper output) : ClusterTest<ClusterFixture>(cluster, output)
{

    [Fact]
    public async Task Fabric_devices_json_lists_every_device_of_every_node_from_any_node()
    {
        using var cli = FabricProcess.Start("fabric devices", "devices", "--json", "--gateway", Cluster["n3"].Gateway);
        var exit = await cli.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.True(exit == 0, cli.Output);
        var devices = JsonSerializer.Deserialize<DeviceInfo[]>(cli.Output.Trim(), HttpGateway.Json)!;
        Assert.Equal(
            ["n1/dev0", "n1/dev1", "n2/dev0", "n2/dev1", "n3/dev0", "n3/dev1"],
            devices.Select(d => d.Id.ToString()).Order());
        Assert.All(devices, d => Assert.Equal(64L << 20, d.MemoryTotal));
    }

    [Fact]
    public async Task A_client_outside_the_cluster_drives_devices_on_every_node()
    {
        using var system = FabricClientSystem.Create();
        await using var client = await FabricClient.ConnectAsync(system, Cluster["n1"].Endpoint);
        var devices = await client.ListDevicesAsync();
        Assert.Equal(6, devices.Count);

        foreach (var node in new[] { "n1", "n2", "n3" })
        {
            await using var context = await client.OpenAsync(new DeviceId(node, 1));
            var space = await context.CreateAddressSpaceAsync();
            await context.AttachAsync(space);
            var x = Enumerable.Range(0, 4096).Select(i => (float)i).ToArray();
            var input = await context.AllocateAsync(x.Length * 4);
            var result = await context.AllocateAsync(x.Length * 4 + 4096);
            await context.WriteAsync(input, 0, MemoryMarshal.AsBytes(x.AsSpan()).ToArray());
            var inIova = await context.MapAsync(space, input, Access.Read);
            var outIova = await context.MapAsync(space, result, Access.ReadWrite);

            var submitted = await context.SubmitAsync(new CommandBufferBuilder()
                .Scale(outIova, inIova, 4096, 0.5f)
                .ReduceSum(outIova + 4096 * 4, inIova, 4096)
                .Build());
            var status = await context.WaitAsync(submitted.Fence, TimeSpan.FromSeconds(30));

            Assert.Equal(FenceState.Completed, status.State);
            Assert.Equal(node, submitted.Fence.Device.Node);
            var scaled = MemoryMarshal.Cast<byte, float>(await context.ReadAsync(result, 0, 4096 * 4)).ToArray();
            Assert.Equal(x.Select(v => v * 0.5f), scaled);
            Assert.Equal(4096 * 4095 / 2f, BitConverter.ToSingle(await context.ReadAsync(result, 4096 * 4, 4)));
            var exported = await context.ExportAsync(input, Access.Read);
            var imported = await context.ImportAsync(exported.Token);
            Assert.Equal(MemoryMarshal.AsBytes(x.AsSpan()).ToArray()[..64], await context.ReadAsync(imported.Handle, 0, 64));
            var error = await Assert.ThrowsAsync<FabricException>(() => context.WriteAsync(imported.Handle, 0, new byte[] { 1 }));
            Assert.Equal(ErrorCode.EPERM, error.Code);
        }
        await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.MemoryUsed == 0 && d.OpenContexts == 0), TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task Sigkill_of_a_client_process_releases_its_contexts_on_every_node()
    {
        var baseline = await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.OpenContexts == 0), TimeSpan.FromSeconds(15));
        using var client = FabricProcess.Start("fabric check", "check", "--connect", Cluster["n2"].Endpoint, "--bytes", "1MiB", "--hold");
        await client.WaitForLineAsync("holding 6 contexts", TimeSpan.FromSeconds(120));
        // The gateway's view is the registry's (each node publishes every second): wait until it shows what the client holds.
        var held = await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.OpenContexts == 1 && d.MemoryUsed >= 3L << 20), TimeSpan.FromSeconds(10));
        Assert.Contains("all 6 devices computed the host's results", client.Output);

        client.Kill();
        var clock = Stopwatch.StartNew();
        var released = await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.OpenContexts == 0 && d.MemoryUsed == 0), TimeSpan.FromSeconds(20));

        Output.WriteLine($"released on every node {clock.Elapsed.TotalSeconds:0.0} s after SIGKILL of the client");
        Assert.All(held, d => Assert.True(d.MemoryUsed >= 3L << 20, $"{d.Id} held only {d.MemoryUsed} bytes"));
        Assert.Equal(baseline.Select(d => d.MemoryUsed), released.Select(d => d.MemoryUsed));
    }
}
