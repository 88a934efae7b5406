using System.Diagnostics;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;

namespace Fabric.Node.Bench;

/// <summary>
/// <c>fabric bench remote</c>: this process is a client; it starts one <c>fabric node</c> process on 127.0.0.1 and
/// measures, between the same two processes: remote small-command submit→fence latency against a plain Akka
/// request/reply (the node's ping actor), and pipelined remote submissions per second against plain one-way Akka
/// messages per second.
/// </summary>
public static class RemoteBench
{
    public sealed record Options(bool Quick);

    public static async Task<IReadOnlyList<BenchLine>> RunAsync(Options options, Action<string> progress, CancellationToken cancel)
    {
        await using var nodes = await BenchNodes.StartAsync("bench", 1, "64MiB", progress, cancel);
        var client = nodes.Client;
        var ping = await nodes.ResolveAsync(0, Ping.Name, cancel);
        await using var context = await client.OpenAsync(new DeviceId("bench1", 0), cancel);
        var space = await context.CreateAddressSpaceAsync(cancel);
        await context.AttachAsync(space, cancel);
        var buffer = await context.AllocateAsync(4096, cancel: cancel);
        var iova = await context.MapAsync(space, buffer, Access.ReadWrite, cancel: cancel);
        var command = new CommandBufferBuilder().Fill(iova, 256, 0x5A5A5A5A).Build();

        var rounds = options.Quick ? 2_000 : 10_000;
        progress($"latency: {rounds} remote submissions and {rounds} plain asks, alternating in blocks");
        var submit = new List<double>(rounds);
        var ask = new List<double>(rounds);
        for (var i = 0; i < rounds / 10; i++)
        {
            await SubmitAndWait(context, command, cancel);
            await ping.Ask<Ping.Pong>(new Ping.Request(i), TimeSpan.FromSeconds(10), cancel);
        }
        for (var block = 0; block < 10; block++)
        {
            for (var i = 0; i < rounds / 10; i++)
            {
                var started = Stopwatch.GetTimestamp();
                await SubmitAndWait(context, command, cancel);
                submit.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
            }
            for (var i = 0; i < rounds / 10; i++)
            {
                var started = Stopwatch.GetTimestamp();
                await ping.Ask<Ping.Pong>(new Ping.Request(i), TimeSpan.FromSeconds(10), cancel);
                ask.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
            }
        }
        submit.Sort();
        ask.Sort();

        var total = options.Quick ? 20_000 : 100_000;
        progress($"throughput: {total} pipelined remote submissions and {total} one-way messages");
        var submitRate = await SubmissionsPerSecond(context, command, total, cancel);
        var onewayRate = await OneWayPerSecond(ping, total, cancel);

        return
        [
            new BenchLine("remote_submit_latency_p50_us", Percentiles.Of(submit, 50), "us", Percentiles.Of(ask, 50), "akka_ask", "<= 1.3x akka_ask"),
            new BenchLine("remote_submit_latency_p99_us", Percentiles.Of(submit, 99), "us", Percentiles.Of(ask, 99), "akka_ask"),
            new BenchLine("remote_submit_throughput_per_s", submitRate, "per_s", onewayRate, "akka_oneway", ">= 0.7x akka_oneway"),
        ];
    }

    private static async Task SubmitAndWait(DeviceContext context, byte[] command, CancellationToken cancel)
    {
        var submitted = await context.SubmitAsync(command, cancel: cancel);
        var status = await context.WaitAsync(submitted.Fence, TimeSpan.FromSeconds(10), cancel);
        if (status.State != FenceState.Completed) throw new InvalidOperationException($"{submitted.Fence} ended {status.State}: {status.Error}");
    }

    private static async Task<double> SubmissionsPerSecond(DeviceContext context, byte[] command, int total, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var window = new Queue<Task<ContextRequests.Submitted>>();
        FenceId? last = null;
        for (var i = 0; i < total; i++)
        {
            window.Enqueue(context.SubmitAsync(command, queue: 0, cancel: cancel));
            if (window.Count >= 512) last = (await window.Dequeue()).Fence;
        }
        while (window.Count > 0) last = (await window.Dequeue()).Fence;
        await context.WaitAsync(last!.Value, TimeSpan.FromMinutes(1), cancel); // one queue: the last fence is the last to signal
        return total / clock.Elapsed.TotalSeconds;
    }

    private static async Task<double> OneWayPerSecond(IActorRef ping, int total, CancellationToken cancel)
    {
        var before = (await ping.Ask<Ping.TickCount>(new Ping.GetTicks(), TimeSpan.FromSeconds(10), cancel)).Count;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < total; i++) ping.Tell(new Ping.Tick(i));
        while ((await ping.Ask<Ping.TickCount>(new Ping.GetTicks(), TimeSpan.FromSeconds(10), cancel)).Count - before < total)
            await Task.Delay(1, cancel);
        return total / clock.Elapsed.TotalSeconds;
    }
}
