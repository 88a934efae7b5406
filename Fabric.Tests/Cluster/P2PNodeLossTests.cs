using System.Diagnostics;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Node.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>SIGKILL of the exporter's node in the middle of transfers: every importer's work ends promptly with an error.</summary>
[Collection(ProcessCollection.Name)]
public sealed class ExporterNodeLossTests(ClusterFixture cluster, ITestOutputHelper output) : ClusterTest<ClusterFixture>(cluster, output)
{

    [Fact]
    public async Task Sigkill_of_the_exporter_mid_transfer_ends_the_importers_work_within_the_detection_time()
    {
        const long size = 24L << 20;
        await using var client = await ActorSystemHolder.ConnectAsync(Cluster["n1"].Endpoint);
        var a = await P2P.OpenAsync(client.Client, new DeviceId("n3", 0));
        var source = await a.AllocateAsync(size);
        var exported = await a.Context.ExportAsync(source.Handle, Access.Read);
        var transfers = new List<(P2P Importer, BufferHandle Import, ContextRequests.Submitted Submitted)>();
        foreach (var device in new[] { new DeviceId("n1", 0), new DeviceId("n2", 0) })
        {
            var b = await P2P.OpenAsync(client.Client, device);
            var imported = await b.Context.ImportAsync(exported.Token);
            var remote = await b.Context.MapAsync(b.Space, imported.Handle, Access.Read);
            var local = await b.AllocateAsync(size);
            var copies = new CommandBufferBuilder();
            for (var i = 0; i < 200; i++) copies.Copy(local.Iova, remote, (ulong)size); // ~5 GB: far longer than the test waits
            transfers.Add((b, imported.Handle, await b.Context.SubmitAsync(copies.Build())));
        }
        // Kill only once both importers' devices are busy with the transfers.
        foreach (var device in new[] { new DeviceId("n1", 0), new DeviceId("n2", 0) })
            await UntilAsync(() => client.Client.GetDeviceInfoAsync(device), d => d.QueueDepth > 0, TimeSpan.FromSeconds(20), $"{device} running its copies");

        Cluster["n3"].Process.Kill();
        var clock = Stopwatch.StartNew();
        foreach (var (importer, import, submitted) in transfers)
        {
            var status = await importer.Context.WaitAsync(submitted.Fence, TimeSpan.FromSeconds(30));
            var ended = clock.Elapsed;
            Output.WriteLine($"{submitted.Fence} ended {status.State} {ended.TotalSeconds:0.00} s after SIGKILL: {status.Error}");
            Assert.Equal(FenceState.Failed, status.State);
            Assert.Contains(status.Error!.Code, new[] { ErrorCode.ENODEV, ErrorCode.EIO });
            Assert.Contains("n3", status.Error.Message);
            Assert.True(ended <= ClusterTuning.DetectionTime, $"ended {ended.TotalSeconds:0.0} s after the kill");
            // Later use of the import fails the same way, at once.
            var later = await Assert.ThrowsAsync<FabricException>(() => importer.Context.ReadAsync(import, 0, 4096));
            Assert.Contains(later.Code, new[] { ErrorCode.ENODEV, ErrorCode.EIO });
            // A new import of the lost node's export fails at once, naming the node: nobody is left to answer it.
            var again = await Assert.ThrowsAsync<FabricException>(() => importer.Context.ImportAsync(exported.Token));
            Output.WriteLine($"importing {exported.Token.Export} again {clock.Elapsed.TotalSeconds:0.00} s after SIGKILL: {again.Error}");
            Assert.Equal(ErrorCode.ENODEV, again.Code);
            Assert.Contains("n3", again.Message);
        }
        foreach (var (importer, _, _) in transfers) await importer.DisposeAsync();
    }
}

/// <summary>SIGKILL of an importer's node: the export detaches it, and the exporter's memory is freed once it closes.</summary>
[Collection(ProcessCollection.Name)]
public sealed class ImporterNodeLossTests(ClusterFixture cluster, ITestOutputHelper output) : ClusterTest<ClusterFixture>(cluster, output)
{

    [Fact]
    public async Task Sigkill_of_an_importer_node_detaches_it_and_the_exporter_frees_its_memory_on_close()
    {
        await using var client = await ActorSystemHolder.ConnectAsync(Cluster["n1"].Endpoint);
        var exporter = new DeviceId("n1", 0);
        var baseline = (await client.Client.GetDeviceInfoAsync(exporter)).MemoryUsed;
        var a = await P2P.OpenAsync(client.Client, exporter);
        var source = await a.UploadAsync(new byte[1 << 20]);
        var exported = await a.Context.ExportAsync(source.Handle, Access.Read);
        var b = await P2P.OpenAsync(client.Client, new DeviceId("n3", 1));
        var imported = await b.Context.ImportAsync(exported.Token);
        Assert.Equal(new byte[16], await b.Context.ReadAsync(imported.Handle, 0, 16));

        Cluster["n3"].Process.Kill();
        await a.Context.CloseAsync();
        Assert.Equal(baseline + (1 << 20), (await client.Client.GetDeviceInfoAsync(exporter)).MemoryUsed); // still imported
        var clock = Stopwatch.StartNew();
        await UntilAsync(async () => (await client.Client.GetDeviceInfoAsync(exporter)).MemoryUsed, used => used == baseline,
            TimeSpan.FromSeconds(30), "the export releasing the memory of a dead importer");
        Output.WriteLine($"exporter memory back at baseline {clock.Elapsed.TotalSeconds:0.0} s after the close");
        Assert.Equal(0, (await client.Client.GetDeviceInfoAsync(exporter)).Exports);
    }
}
