using System.Diagnostics.Metrics;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Core.Telemetry;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>The fence-wait histogram: a wait that had to wait is recorded, with its device, for as long as it waited.</summary>
public sealed class FenceMetricsTests(ITestOutputHelper output) : DeviceStackTest(output)
{
    [Fact]
    public async Task A_wait_on_a_gated_fence_and_one_that_times_out_are_recorded_with_their_durations_and_device()
    {
        // Other tests' devices are also called t/devN: only this test's fences are told apart, by their durations.
        var recorded = new List<(double Seconds, string? Device)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // Called while FabricMetrics' own initializer creates its instruments: its fields may not be set yet.
            if (instrument.Meter.Name == FabricMetrics.MeterName && instrument.Name == "fabric.device.fence.wait.duration") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
        {
            string? device = null;
            foreach (var tag in tags) if (tag.Key == "device") device = tag.Value as string;
            lock (recorded) recorded.Add((value, device));
        });
        listener.Start();

        var (context, space) = await OpenAttachedAsync(1);
        var (_, iova) = await BufferWithAsync(context, space, new byte[4096]);
        var gate = await context.CreateFenceAsync();
        var submitted = await context.SubmitAsync(new CommandBufferBuilder().WaitFence(0).Fill(iova, 4096, 7).Build(), inFences: [gate]);
        var waiting = context.WaitAsync(submitted.Fence, Wait);
        await Task.Delay(1000);
        await context.SignalFenceAsync(gate);
        Assert.Equal(FenceState.Completed, (await waiting).State);
        var never = await context.CreateFenceAsync();
        Assert.Equal(FenceState.Busy, (await context.WaitAsync(never, TimeSpan.FromMilliseconds(300))).State);

        List<(double Seconds, string? Device)> mine;
        lock (recorded) mine = [.. recorded.Where(r => r.Device == Dev(1).ToString())];
        var seen = string.Join(", ", mine.Select(r => $"{r.Seconds:0.000} s"));
        // The gated wait lasted at least the second before the signal, well under the 10 s it allowed.
        Assert.True(mine.Any(r => r.Seconds is >= 0.99 and < 9), $"waits recorded on {Dev(1)}: {seen}");
        // The one that timed out: about its 300 ms.
        Assert.True(mine.Any(r => r.Seconds is >= 0.29 and < 0.95), $"waits recorded on {Dev(1)}: {seen}");
        Assert.Equal(FabricMetrics.MeterName, FabricMetrics.FenceWait.Meter.Name);
        Assert.Equal("s", FabricMetrics.FenceWait.Unit);
    }
}
