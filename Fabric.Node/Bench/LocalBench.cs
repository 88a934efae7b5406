using System.Diagnostics;
using System.Runtime.InteropServices;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Fabric.Node.Hosting;

namespace Fabric.Node.Bench;

/// <summary>
/// <c>fabric bench local</c>: one device in this process. Submit→fence latency of a small command, pipelined
/// small-command throughput, and fill/copy bandwidth against a plain memcpy of the same size in the same run.
/// </summary>
public static class LocalBench
{
    public sealed record Options(bool Quick);

    public static async Task<IReadOnlyList<BenchLine>> RunAsync(Options options, Action<string> progress, CancellationToken cancel)
    {
        var bandwidthBytes = options.Quick ? 64L << 20 : 256L << 20;
        var profile = new DeviceProfile { MemoryBytes = 3 * bandwidthBytes + (64L << 20), Queues = 4, Watchdog = TimeSpan.FromMinutes(2) };
        await using var node = InProcessNode.Start("bench", [profile]);
        await using var context = await node.Client.OpenAsync(new DeviceId("bench", 0), cancel);
        var space = await context.CreateAddressSpaceAsync(cancel);
        await context.AttachAsync(space, cancel);

        var small = await context.AllocateAsync(4096, cancel: cancel);
        var smallIova = await context.MapAsync(space, small, Access.ReadWrite, cancel: cancel);
        var smallCommand = new CommandBufferBuilder().Fill(smallIova, 256, 0xA5A5A5A5).Build();

        var lines = new List<BenchLine>();

        // Latency: one submission at a time, submit → wait → next.
        var rounds = options.Quick ? 2_000 : 20_000;
        progress($"latency: {rounds} small submissions one at a time");
        for (var i = 0; i < rounds / 10; i++) await SubmitAndWait(context, smallCommand, cancel); // warm-up
        var samples = new double[rounds];
        for (var i = 0; i < rounds; i++)
        {
            var started = Stopwatch.GetTimestamp();
            await SubmitAndWait(context, smallCommand, cancel);
            samples[i] = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
        }
        Array.Sort(samples);
        lines.Add(new BenchLine("submit_latency_p50_us", Percentiles.Of(samples, 50), "us", Goal: "<= 20"));
        lines.Add(new BenchLine("submit_latency_p99_us", Percentiles.Of(samples, 99), "us", Goal: "<= 200"));

        // Throughput: keep a window of submissions in flight over all queues, wait only for the last fences.
        var total = options.Quick ? 20_000 : 200_000;
        progress($"throughput: {total} small submissions pipelined over {profile.Queues} queues");
        var clock = Stopwatch.StartNew();
        var window = new Queue<(int Queue, Task<ContextRequests.Submitted> Reply)>();
        var last = new FenceId?[profile.Queues];
        for (var i = 0; i < total; i++)
        {
            var queue = i % profile.Queues;
            window.Enqueue((queue, context.SubmitAsync(smallCommand, queue, cancel: cancel)));
            if (window.Count >= 512) await Drain();
        }
        while (window.Count > 0) await Drain();
        foreach (var fence in last.OfType<FenceId>()) await context.WaitAsync(fence, TimeSpan.FromMinutes(1), cancel);
        clock.Stop();
        lines.Add(new BenchLine("submit_throughput_per_s", total / clock.Elapsed.TotalSeconds, "per_s"));

        async Task Drain()
        {
            var (queue, reply) = window.Dequeue();
            last[queue] = (await reply).Fence;
        }

        // Bandwidth: fill and copy of a large buffer on the device, against memcpy of the same size.
        progress($"bandwidth: fill and copy of {bandwidthBytes >> 20} MiB against memcpy");
        var src = await context.AllocateAsync(bandwidthBytes, cancel: cancel);
        var dst = await context.AllocateAsync(bandwidthBytes, cancel: cancel);
        var srcIova = await context.MapAsync(space, src, Access.ReadWrite, cancel: cancel);
        var dstIova = await context.MapAsync(space, dst, Access.ReadWrite, cancel: cancel);
        var fill = new CommandBufferBuilder().Fill(srcIova, (ulong)bandwidthBytes, 0x01020304).Build();
        var copy = new CommandBufferBuilder().Copy(dstIova, srcIova, (ulong)bandwidthBytes).Build();
        var repeats = options.Quick ? 3 : 8;
        await context.RunAsync(fill, TimeSpan.FromMinutes(1), cancel: cancel); // touch every page once
        await context.RunAsync(copy, TimeSpan.FromMinutes(1), cancel: cancel);
        var fillGBps = await Best(repeats, () => context.RunAsync(fill, TimeSpan.FromMinutes(1), cancel: cancel), bandwidthBytes);
        var copyGBps = await Best(repeats, () => context.RunAsync(copy, TimeSpan.FromMinutes(1), cancel: cancel), bandwidthBytes);
        var memcpyGBps = MeasureMemcpy(bandwidthBytes, repeats);
        lines.Add(new BenchLine("fill_GBps", fillGBps, "GBps", memcpyGBps, "memcpy", ">= 0.7x memcpy"));
        lines.Add(new BenchLine("copy_GBps", copyGBps, "GBps", memcpyGBps, "memcpy", ">= 0.7x memcpy"));
        return lines;
    }

    private static async Task SubmitAndWait(DeviceContext context, byte[] command, CancellationToken cancel)
    {
        var submitted = await context.SubmitAsync(command, cancel: cancel);
        var status = await context.WaitAsync(submitted.Fence, TimeSpan.FromSeconds(10), cancel);
        if (status.State != FenceState.Completed) throw new InvalidOperationException($"{submitted.Fence} ended {status.State}: {status.Error}");
    }

    /// <summary>The best of several runs, in GB/s (10^9 bytes per second).</summary>
    private static async Task<double> Best(int repeats, Func<Task> run, long bytes)
    {
        var best = TimeSpan.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            await run();
            if (clock.Elapsed < best) best = clock.Elapsed;
        }
        return bytes / best.TotalSeconds / 1e9;
    }

    private static unsafe double MeasureMemcpy(long bytes, int repeats)
    {
        var src = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        var dst = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        try
        {
            NativeMemory.Fill(src, (nuint)bytes, 1);
            NativeMemory.Fill(dst, (nuint)bytes, 2);
            var best = TimeSpan.MaxValue;
            for (var i = 0; i < repeats; i++)
            {
                var clock = Stopwatch.StartNew();
                Buffer.MemoryCopy(src, dst, bytes, bytes);
                if (clock.Elapsed < best) best = clock.Elapsed;
            }
            return bytes / best.TotalSeconds / 1e9;
        }
        finally
        {
            NativeMemory.AlignedFree(src);
            NativeMemory.AlignedFree(dst);
        }
    }
}
