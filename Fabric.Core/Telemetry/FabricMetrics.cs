using System.Diagnostics.Metrics;

namespace Fabric.Core.Telemetry;

/// <summary>
/// Fabric's own instruments (System.Diagnostics.Metrics, meter <see cref="MeterName"/>): what the devices, the data
/// plane and the jobs record as it happens. A node exports them, with the gauges it reads from its devices, cluster
/// and jobs at each scrape, on <c>GET /metrics</c> in the Prometheus text format. Names are OpenTelemetry's; the
/// exporter turns <c>fabric.job.task.duration</c> with unit <c>s</c> into <c>fabric_job_task_duration_seconds</c>, and
/// adds <c>_total</c> to counters.
/// </summary>
public static class FabricMetrics
{
    public const string MeterName = "Fabric";

    public static readonly Meter Meter = new(MeterName);

    /// <summary>Bucket bounds for durations from 100 µs (a fence signalled at once) to a minute (a long kernel).</summary>
    private static readonly double[] Seconds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    private static Histogram<double> Duration(string name, string description) =>
        Meter.CreateHistogram(name, "s", description, tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = Seconds });

    /// <summary>From a wait on a fence that had not signalled to its answer (signalled, or timed out); tag <c>device</c>.</summary>
    public static readonly Histogram<double> FenceWait =
        Duration("fabric.device.fence.wait.duration", "Time from a wait on an unsignalled fence to its answer (signal or timeout).");

    /// <summary>Bytes this node moved over the data plane as an importer; tags <c>direction</c> (read, write) and <c>peer</c> (the exporter's node).</summary>
    public static readonly Counter<long> DataPlaneBytes =
        Meter.CreateCounter<long>("fabric.data_plane.transferred", "By", "Bytes this node read from or wrote to other nodes' exports over the data plane.");

    /// <summary>One data-plane transfer that completed, from connecting to its last byte; tags <c>direction</c>, <c>peer</c>.</summary>
    public static readonly Histogram<double> DataPlaneTransfer =
        Duration("fabric.data_plane.transfer.duration", "Duration of one completed data-plane transfer (read or write of a remote export).");

    /// <summary>A task's run on its device, as its job's node recorded it (first completions and recomputations).</summary>
    public static readonly Histogram<double> TaskDuration =
        Duration("fabric.job.task.duration", "Duration of a task's successful run on its device (first completions and recomputations).");

    /// <summary>Tasks run again because the outputs of their completed run were lost with a node; tag <c>job</c>.</summary>
    public static readonly Counter<long> Recomputations =
        Meter.CreateCounter<long>("fabric.job.recomputations", "{task}", "Completed tasks run again because their outputs were lost with a node.");

    /// <summary>One write of job events to the journal (a batch written together), from the call to its acknowledgement.</summary>
    public static readonly Histogram<double> JournalWrite =
        Duration("fabric.job.journal.write.duration", "Duration of one journal write of job events (a batch written together).");
}
