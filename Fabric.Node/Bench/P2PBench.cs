using System.Diagnostics;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;

namespace Fabric.Node.Bench;

/// <summary>
/// <c>fabric bench p2p</c>: two node processes. A buffer on node A is exported, imported on node B, and B's device
/// copies it into its own memory over the data plane. Measured in one run: transfer throughput against raw TCP
/// between the same two processes with the same chunk size; 4 KiB remote read latency; and how much each process's
/// resident memory grew at its peak during the transfer (both device buffers are touched beforehand, so this is
/// what the transfer itself holds). A second round on two new nodes with certificates (a CA made for the run) measures
/// the transfer over TLS against raw TLS between the same two processes.
/// </summary>
public static class P2PBench
{
    public sealed record Options(bool Quick);

    public static async Task<IReadOnlyList<BenchLine>> RunAsync(Options options, Action<string> progress, CancellationToken cancel)
    {
        var bytes = options.Quick ? 256L << 20 : 1L << 30;
        var memory = $"{(bytes >> 20) + 64}MiB";
        List<BenchLine> lines;
        await using (var nodes = await BenchNodes.StartAsync("p", 2, memory, progress, cancel))
            lines = [.. await RoundAsync(nodes, bytes, tls: false, options, progress, cancel)];
        progress("second round: two new nodes with certificates from a CA made for this run, data plane and baseline over TLS");
        await using (var nodes = await BenchNodes.StartAsync("p", 2, memory, progress, cancel, tls: true))
            lines.AddRange(await RoundAsync(nodes, bytes, tls: true, options, progress, cancel));
        return lines;
    }

    /// <summary>
    /// One round on two nodes: plain, every figure; over TLS, the transfer against the raw-TLS baseline (the same pull
    /// of the same framing and chunk size, through an SslStream between the same two processes).
    /// </summary>
    private static async Task<IReadOnlyList<BenchLine>> RoundAsync(BenchNodes nodes, long bytes, bool tls, Options options, Action<string> progress,
        CancellationToken cancel)
    {
        var over = tls ? " over TLS" : "";
        var client = nodes.Client;
        await using var exporter = await client.OpenAsync(new DeviceId("p1", 0), cancel);
        await using var importer = await client.OpenAsync(new DeviceId("p2", 0), cancel);
        var spaceA = await exporter.CreateAddressSpaceAsync(cancel);
        var spaceB = await importer.CreateAddressSpaceAsync(cancel);
        await exporter.AttachAsync(spaceA, cancel);
        await importer.AttachAsync(spaceB, cancel);

        progress($"preparing {bytes >> 20} MiB on a and on b (every page touched)");
        var source = await exporter.AllocateAsync(bytes, cancel: cancel);
        var sourceIova = await exporter.MapAsync(spaceA, source, Access.ReadWrite, cancel: cancel);
        await exporter.RunAsync(new CommandBufferBuilder().Fill(sourceIova, (ulong)bytes, 0x01020304).Build(), TimeSpan.FromMinutes(2), cancel: cancel);
        var target = await importer.AllocateAsync(bytes, cancel: cancel);
        var targetIova = await importer.MapAsync(spaceB, target, Access.ReadWrite, cancel: cancel);
        await importer.RunAsync(new CommandBufferBuilder().Fill(targetIova, (ulong)bytes, 0).Build(), TimeSpan.FromMinutes(2), cancel: cancel);
        var imported = await importer.ImportAsync((await exporter.ExportAsync(source, Access.Read, cancel)).Token, cancel);
        var remote = await importer.MapAsync(spaceB, imported.Handle, Access.Read, cancel: cancel);
        var transfer = new CommandBufferBuilder().Copy(targetIova, remote, (ulong)bytes).Build();

        progress($"p2p: {bytes >> 20} MiB from a's device to b's device over the data plane{over}");
        var pids = nodes.Cluster.Nodes.Select(n => n.ProcessId ?? 0).ToArray();
        var before = pids.Select(ResetPeakAndReadRss).ToArray();
        var p2p = await BestSeconds(2, () => importer.RunAsync(transfer, TimeSpan.FromMinutes(2), cancel: cancel));
        var growth = pids.Select((pid, i) => (PeakRss(pid) - before[i]) / (double)(1 << 20)).ToArray();
        var check = await importer.ReadAsync(target, bytes - 8, 8, cancel);
        if (!check.SequenceEqual(new byte[] { 4, 3, 2, 1, 4, 3, 2, 1 })) throw new InvalidOperationException("the copied bytes are wrong");

        progress($"raw {(tls ? "TLS" : "TCP")}: {bytes >> 20} MiB from a's process to b's process, same framing and chunk size");
        var probeA = await nodes.ResolveAsync(0, DataPlaneProbe.Name, cancel);
        var probeB = await nodes.ResolveAsync(1, DataPlaneProbe.Name, cancel);
        var endpointA = (await probeA.Ask<DataPlaneProbe.Endpoint>(new DataPlaneProbe.GetEndpoint(), TimeSpan.FromSeconds(10), cancel)).HostPort;
        var raw = await BestSeconds(2, async () =>
        {
            var reply = await probeB.Ask<object>(new DataPlaneProbe.PullRaw(endpointA, bytes), TimeSpan.FromMinutes(2), cancel);
            if (reply is FabricError error) throw new FabricException(error);
        });
        if (tls) return [new BenchLine("p2p_tls_GBps", bytes / p2p / 1e9, "GBps", bytes / raw / 1e9, "raw_tls", ">= 0.80x raw_tls")];

        var reads = options.Quick ? 300 : 2_000;
        progress($"latency: {reads} remote 4 KiB reads (a COPY from the import, submitted and waited on by a client)");
        var small = new CommandBufferBuilder().Copy(targetIova, remote + 4096, 4096).Build();
        var samples = new List<double>(reads);
        for (var i = 0; i < reads + 50; i++)
        {
            var started = Stopwatch.GetTimestamp();
            await importer.RunAsync(small, TimeSpan.FromSeconds(10), cancel: cancel);
            if (i >= 50) samples.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
        }
        samples.Sort();

        return
        [
            new BenchLine("p2p_transfer_GBps", bytes / p2p / 1e9, "GBps", bytes / raw / 1e9, "raw_tcp", ">= 0.80x raw_tcp"),
            new BenchLine("p2p_read_4k_p50_us", Percentiles.Of(samples, 50), "us"),
            new BenchLine("p2p_read_4k_p99_us", Percentiles.Of(samples, 99), "us"),
            new BenchLine("p2p_peak_rss_growth_MiB", growth.Max(), "MiB", Goal: "< 64"),
            new BenchLine("p2p_peak_rss_growth_exporter_MiB", growth[0], "MiB"),
            new BenchLine("p2p_peak_rss_growth_importer_MiB", growth[1], "MiB"),
        ];
    }

    private static async Task<double> BestSeconds(int repeats, Func<Task> run)
    {
        var best = double.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            await run();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return best;
    }

    /// <summary>Resets the kernel's peak-RSS mark of a process (clear_refs 5) and returns its current RSS in bytes.</summary>
    private static long ResetPeakAndReadRss(int pid)
    {
        try { File.WriteAllText($"/proc/{pid}/clear_refs", "5"); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return StatusBytes(pid, "VmRSS:");
    }

    private static long PeakRss(int pid) => StatusBytes(pid, "VmHWM:");

    private static long StatusBytes(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line[field.Length..].Trim().Split(' ')[0]) * 1024;
    }
}
