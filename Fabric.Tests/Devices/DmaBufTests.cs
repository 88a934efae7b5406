using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Core.Client;
using Fabric.Core.Protocol;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>dma-buf exports and imports on one node: zero copy, reference lifetime, revoke, tokens.</summary>
public sealed class DmaBufTests(ITestOutputHelper output) : DeviceStackTest(output)
{
    [Fact]
    public async Task An_import_shares_the_exporters_memory_without_a_copy()
    {
        var (exporter, space0) = await OpenAttachedAsync(0);
        var (importer, space1) = await OpenAttachedAsync(1);
        var (buffer, iova) = await BufferWithAsync(exporter, space0, new byte[8192]);
        var exported = await exporter.ExportAsync(buffer);
        var imported = await importer.ImportAsync(exported.Token);
        var importedIova = await importer.MapAsync(space1, imported.Handle, Access.ReadWrite);

        await exporter.RunAsync(new CommandBufferBuilder().Fill(iova, 8192, 0x11223344).Build(), Wait);
        await importer.RunAsync(new CommandBufferBuilder().Fill(importedIova + 4096, 4, 0x55555555).Build(), Wait);

        Assert.Equal([0x44, 0x33, 0x22, 0x11], await importer.ReadAsync(imported.Handle, 0, 4));
        Assert.Equal([0x55, 0x55, 0x55, 0x55], await exporter.ReadAsync(buffer, 4096, 4));
        Assert.Equal(8192, (await InfoAsync(0)).MemoryUsed);
        Assert.Equal(0, (await InfoAsync(1)).MemoryUsed);
    }

    [Fact]
    public async Task Exported_memory_outlives_the_exporters_close_while_imported_and_is_freed_at_last_detach()
    {
        var exporter = await Client.OpenAsync(Dev(0));
        var (importer, space1) = await OpenAttachedAsync(1);
        var second = await Client.OpenAsync(Dev(1));
        var buffer = await exporter.AllocateAsync(4096);
        await exporter.WriteAsync(buffer, 0, new byte[] { 42, 43 });
        var exported = await exporter.ExportAsync(buffer, Access.Read);
        var first = await importer.ImportAsync(exported.Token);
        var other = await second.ImportAsync(exported.Token);
        var firstIova = await importer.MapAsync(space1, first.Handle, Access.Read);

        await exporter.CloseAsync();

        Assert.Equal([42, 43], await importer.ReadAsync(first.Handle, 0, 2));
        Assert.Equal([42, 43], await importer.ReadIovaAsync(space1, firstIova, 2));
        Assert.Equal(4096, (await InfoAsync(0)).MemoryUsed);

        await second.FreeAsync(other.Handle);
        Assert.Equal(4096, (await InfoAsync(0)).MemoryUsed);
        await importer.UnmapAsync(space1, firstIova, 4096);
        await importer.FreeAsync(first.Handle);

        await AwaitMemoryUsedAsync(0, 0);
        await AwaitAssertAsync(async () => Assert.Equal(0, (await InfoAsync(0)).Exports), Wait);
    }

    [Fact]
    public async Task The_importing_device_counts_the_imports_its_contexts_hold_until_each_is_freed_or_its_context_closes()
    {
        await using var exporter = await Client.OpenAsync(Dev(0));
        var importer = await Client.OpenAsync(Dev(1));
        var exported = await exporter.ExportAsync(await exporter.AllocateAsync(4096));
        var first = await importer.ImportAsync(exported.Token);
        await importer.ImportAsync(exported.Token);

        var holding = await InfoAsync(1);
        await importer.FreeAsync(first.Handle);
        var afterFree = await InfoAsync(1);
        await importer.CloseAsync();

        Assert.Equal(2, holding.Imports);
        Assert.Equal(0, (await InfoAsync(0)).Imports);
        Assert.Equal(1, afterFree.Imports);
        await AwaitAssertAsync(async () => Assert.Equal(0, (await InfoAsync(1)).Imports), Wait);
    }

    [Fact]
    public async Task Exported_memory_outlives_the_exporter_freeing_its_handle()
    {
        await using var exporter = await Client.OpenAsync(Dev(0));
        await using var importer = await Client.OpenAsync(Dev(1));
        var buffer = await exporter.AllocateAsync(4096);
        await exporter.WriteAsync(buffer, 0, new byte[] { 7 });
        var exported = await exporter.ExportAsync(buffer);
        var imported = await importer.ImportAsync(exported.Token);

        await exporter.FreeAsync(buffer);

        Assert.Equal([7], await importer.ReadAsync(imported.Handle, 0, 1));
        await FailsWithAsync(ErrorCode.EINVAL, () => exporter.ReadAsync(buffer, 0, 1));
        Assert.Equal(4096, (await InfoAsync(0)).MemoryUsed);
    }

    [Fact]
    public async Task Revoke_tells_every_importer_and_later_use_fails_with_EIO()
    {
        var (exporter, space0) = await OpenAttachedAsync(0);
        var (importer, space1) = await OpenAttachedAsync(1);
        var (buffer, _) = await BufferWithAsync(exporter, space0, new byte[4096]);
        var exported = await exporter.ExportAsync(buffer);
        var imported = await importer.ImportAsync(exported.Token);
        var iova = await importer.MapAsync(space1, imported.Handle, Access.ReadWrite);

        var told = await exporter.RevokeAsync(exported.Token.Export);

        Assert.Equal(1, told);
        var read = await FailsWithAsync(ErrorCode.EIO, () => importer.ReadAsync(imported.Handle, 0, 4));
        Assert.Contains("revoked", read.Message);
        await FailsWithAsync(ErrorCode.EIO, () => importer.ReadIovaAsync(space1, iova, 4));
        await FailsWithAsync(ErrorCode.EIO, () => importer.SubmitAsync(new CommandBufferBuilder().Fill(iova, 16, 1).Build()));
        await FailsWithAsync(ErrorCode.ENOENT, () => importer.ImportAsync(exported.Token));
        // The exporter keeps its own buffer; the importer can still clean up its handle.
        Assert.Equal(new byte[4], await exporter.ReadAsync(buffer, 0, 4));
        await importer.UnmapAsync(space1, iova, 4096);
        await importer.FreeAsync(imported.Handle);
    }

    [Fact]
    public async Task Imports_that_race_a_revoke_each_get_an_import_or_ENOENT_and_none_is_left_unanswered()
    {
        var (exporter, space0) = await OpenAttachedAsync(0);
        var (buffer, _) = await BufferWithAsync(exporter, space0, new byte[4096]);
        var exported = await exporter.ExportAsync(buffer);
        var importers = new List<DeviceContext>();
        for (var i = 0; i < 4; i++) importers.Add(await Client.OpenAsync(Dev(1)));

        // Imports before the revoke attach, those after it meet no export, and those that reach the export while it
        // ends are answered by it: every one hears something well inside the request timeout.
        var imports = Enumerable.Range(0, 160).Select(async i =>
        {
            try { await importers[i % importers.Count].ImportAsync(exported.Token); return "imported"; }
            catch (FabricException e) { return e.Code.ToString(); }
        }).ToList();
        var told = await exporter.RevokeAsync(exported.Token.Export);
        var answers = await Task.WhenAll(imports);

        Assert.All(answers, a => Assert.Contains(a, new[] { "imported", nameof(ErrorCode.ENOENT) }));
        Assert.InRange(told, 0, importers.Count);
        await AwaitAssertAsync(async () => Assert.Equal((0, 4096L), ((await InfoAsync(0)).Exports, (await InfoAsync(0)).MemoryUsed)), Wait);
        foreach (var importer in importers) await importer.CloseAsync();
        Assert.Equal(new byte[4], await exporter.ReadAsync(buffer, 0, 4));
    }

    [Fact]
    public async Task A_submission_queued_before_the_revoke_fails_with_EIO_instead_of_touching_the_memory()
    {
        var (exporter, space0) = await OpenAttachedAsync(0);
        var (importer, space1) = await OpenAttachedAsync(1);
        var (buffer, _) = await BufferWithAsync(exporter, space0, new byte[4096]);
        var exported = await exporter.ExportAsync(buffer);
        var imported = await importer.ImportAsync(exported.Token);
        var iova = await importer.MapAsync(space1, imported.Handle, Access.ReadWrite);
        // A gate on the exporter's device: a 1024³ matmul (hundreds of ms), then its out-fence signals.
        const int n = 1024;
        var a = await exporter.AllocateAsync(n * n * 4);
        var c = await exporter.AllocateAsync(n * n * 4);
        var aIova = await exporter.MapAsync(space0, a, Access.ReadWrite);
        var cIova = await exporter.MapAsync(space0, c, Access.ReadWrite);
        var gate = await exporter.SubmitAsync(new CommandBufferBuilder().MatMul(cIova, aIova, aIova, n, n, n).SignalFence(0).Build(), outFences: 1);
        var blocked = await importer.SubmitAsync(
            new CommandBufferBuilder().WaitFence(0).Fill(iova, 4096, 0xFFFFFFFF).Build(), inFences: [gate.OutFences[0]]);

        await exporter.RevokeAsync(exported.Token.Export);
        // The gate's matmul takes hundreds of ms alone, far longer on a loaded machine: wait for it as long as it takes.
        var status = await importer.WaitAsync(blocked.Fence, TimeSpan.FromMinutes(2));

        Assert.Equal(FenceState.Completed, (await exporter.WaitAsync(gate.Fence, TimeSpan.FromMinutes(2))).State);
        Assert.Equal(FenceState.Failed, status.State);
        Assert.Equal(ErrorCode.EIO, status.Error!.Code);
        Assert.Equal(new byte[4], await exporter.ReadAsync(buffer, 0, 4));
        Assert.Equal(1, (await importer.GetInfoAsync()).Faults);
    }

    [Fact]
    public async Task Only_the_exporting_context_may_revoke()
    {
        await using var exporter = await Client.OpenAsync(Dev(0));
        await using var stranger = await Client.OpenAsync(Dev(0));
        var exported = await exporter.ExportAsync(await exporter.AllocateAsync(4096));

        var error = await FailsWithAsync(ErrorCode.EPERM, () => stranger.RevokeAsync(exported.Token.Export));

        Assert.Contains(exporter.Id.ToString(), error.Message);
        Assert.Equal(1, (await InfoAsync(0)).Exports);
    }

    [Fact]
    public async Task A_forged_token_fails_with_EPERM_and_an_unknown_export_with_ENOENT()
    {
        await using var exporter = await Client.OpenAsync(Dev(0));
        await using var importer = await Client.OpenAsync(Dev(1));
        var exported = await exporter.ExportAsync(await exporter.AllocateAsync(4096));

        var forged = await FailsWithAsync(ErrorCode.EPERM, () => importer.ImportAsync(exported.Token with { Secret = "guess" }));
        var unknown = await FailsWithAsync(ErrorCode.ENOENT, () =>
            importer.ImportAsync(exported.Token with { Export = exported.Token.Export with { Value = 99 } }));
        var elsewhere = await FailsAsync(() =>
            importer.ImportAsync(exported.Token with { Export = new ExportId(new DeviceId("t", 5), 1) }));

        Assert.Contains("forged", forged.Message);
        Assert.Contains("export-99", unknown.Message);
        Assert.Equal(ErrorCode.ENODEV, elsewhere.Code);
        Assert.Equal(0, (await importer.GetInfoAsync()).Imports);
    }

    [Fact]
    public async Task A_read_only_import_refuses_writes_with_EPERM()
    {
        await using var exporter = await Client.OpenAsync(Dev(0));
        var (importer, space1) = await OpenAttachedAsync(1);
        var exported = await exporter.ExportAsync(await exporter.AllocateAsync(4096), Access.Read);
        var imported = await importer.ImportAsync(exported.Token);

        await FailsWithAsync(ErrorCode.EPERM, () => importer.WriteAsync(imported.Handle, 0, new byte[] { 1 }));
        await FailsWithAsync(ErrorCode.EPERM, () => importer.MapAsync(space1, imported.Handle, Access.ReadWrite));
        var iova = await importer.MapAsync(space1, imported.Handle, Access.Read);
        var submit = await FailsWithAsync(ErrorCode.EPERM, () => importer.SubmitAsync(new CommandBufferBuilder().Fill(iova, 4, 1).Build()));

        Assert.Contains("FILL", submit.Message);
        Assert.Equal(Access.Read, imported.Access);
    }

    [Fact]
    public async Task An_importers_death_detaches_it_and_the_memory_is_freed_once_the_exporter_closes()
    {
        var exporter = await Client.OpenAsync(Dev(0));
        var importerClient = Fabric.Core.Client.FabricClient.Connect(Sys, Devices);
        var importer = await importerClient.OpenAsync(Dev(1));
        var exported = await exporter.ExportAsync(await exporter.AllocateAsync(4096));
        await importer.ImportAsync(exported.Token);
        Watch(importer.Actor);

        Sys.Stop(importerClient.Session);
        await ExpectTerminatedAsync(importer.Actor);
        await exporter.CloseAsync();

        await AwaitMemoryUsedAsync(0, 0);
    }
}
