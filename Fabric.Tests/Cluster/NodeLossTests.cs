using System.Diagnostics;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Node.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>SIGKILL of a node: the client's operations on its devices end with ENODEV promptly; the others carry on.</summary>
[Collection(ProcessCollection.Name)]
public sealed class NodeLossTests(ClusterFixture cluster, ITestOutputHelper output) : ClusterTest<ClusterFixture>(cluster, output)
{

    private static async Task<(DeviceContext Context, AddressSpaceId Space, Iova Iova)> PrepareAsync(FabricClient client, DeviceId device)
    {
        var context = await client.OpenAsync(device);
        var space = await context.CreateAddressSpaceAsync();
        await context.AttachAsync(space);
        var buffer = await context.AllocateAsync(3 * (1024 * 1024 * 4));
        return (context, space, await context.MapAsync(space, buffer, Access.ReadWrite));
    }

    [Fact]
    public async Task Sigkill_of_a_node_fails_operations_on_its_devices_with_ENODEV_within_the_detection_time()
    {
        using var system = FabricClientSystem.Create();
        await using var client = await FabricClient.ConnectAsync(system, Cluster["n1"].Endpoint);
        var survivors = new[] { await PrepareAsync(client, new DeviceId("n1", 0)), await PrepareAsync(client, new DeviceId("n2", 0)) };
        var (doomed, _, doomedIova) = await PrepareAsync(client, new DeviceId("n3", 0));
        // Pending work on the doomed node: a 1024³ matmul that cannot finish before the kill.
        const uint n = 1024;
        var matrix = (ulong)n * n * 4;
        var slow = await doomed.SubmitAsync(new CommandBufferBuilder().MatMul(doomedIova, doomedIova + matrix, doomedIova + 2 * matrix, n, n, n)
            .MatMul(doomedIova, doomedIova + matrix, doomedIova + 2 * matrix, n, n, n).Build());
        var pendingWait = doomed.WaitAsync(slow.Fence, TimeSpan.FromSeconds(60));

        Cluster["n3"].Process.Kill();
        var clock = Stopwatch.StartNew();
        var waitError = await Assert.ThrowsAsync<FabricException>(() => pendingWait);
        var detected = clock.Elapsed;
        var laterError = await Assert.ThrowsAsync<FabricException>(() => doomed.AllocateAsync(4096));
        var openError = await Assert.ThrowsAsync<FabricException>(() => client.OpenAsync(new DeviceId("n3", 1)));

        Output.WriteLine($"pending wait on n3 failed {detected.TotalSeconds:0.00} s after SIGKILL: {waitError.Error}");
        Assert.Equal(ErrorCode.ENODEV, waitError.Code);
        Assert.Contains("n3", waitError.Error.Message);
        Assert.True(detected <= ClusterTuning.DetectionTime, $"detected after {detected.TotalSeconds:0.0} s, documented {ClusterTuning.DetectionTime.TotalSeconds} s");
        Assert.Equal(ErrorCode.ENODEV, laterError.Code);
        Assert.Equal(ErrorCode.ENODEV, openError.Code);
        Assert.Contains("n3", openError.Error.Message);

        // The other two nodes keep working.
        foreach (var (context, space, iova) in survivors)
        {
            await context.RunAsync(new CommandBufferBuilder().Fill(iova, 4096, 0x0A0B0C0D).Build(), TimeSpan.FromSeconds(30));
            Assert.Equal(new byte[] { 0x0D, 0x0C, 0x0B, 0x0A }, await context.ReadIovaAsync(space, iova, 4));
        }
        var remaining = await Cluster.AwaitDevicesAsync(ds => ds.Length == 4, TimeSpan.FromSeconds(20));
        Assert.DoesNotContain(remaining, d => d.Id.Node == "n3");
    }
}
