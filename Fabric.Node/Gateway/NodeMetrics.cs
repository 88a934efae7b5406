using System.Collections.Immutable;
using System.Diagnostics.Metrics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using Fabric.Core.Protocol;
using Fabric.Core.Telemetry;
using Fabric.Devices;
using Fabric.Node.Jobs;
using TaskStatus = Fabric.Node.Jobs.TaskStatus;

namespace Fabric.Node.Gateway;

/// <summary>
/// The gauges a node reads at each scrape of <c>GET /metrics</c>: its devices (asked once per scrape, see
/// <see cref="RefreshAsync"/>), the cluster's members as this node sees them, and the tasks of the jobs its entities
/// hold. Together with <see cref="FabricMetrics"/> (what happens: fence waits, transfers, task runs, journal writes),
/// the Prometheus exporter publishes them, e.g. <c>fabric_device_memory_used_bytes{device="n1/dev0",node="n1"}</c>.
/// </summary>
public sealed class NodeMetrics : IDisposable
{
    /// <summary>How long a scrape waits for the device list; past it, the previous list is published.</summary>
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(2);

    private static readonly ImmutableArray<MemberStatus> Statuses = [.. Enum.GetValues<MemberStatus>()];
    private static readonly ImmutableArray<TaskStatus> TaskStates = [.. Enum.GetValues<TaskStatus>()];
    private static readonly ImmutableArray<DeviceStatus> DeviceStatuses = [.. Enum.GetValues<DeviceStatus>()];

    private readonly Meter _meter = new(FabricMetrics.MeterName);
    private readonly ActorRegistry _actors;
    private readonly Akka.Cluster.Cluster _cluster;
    private volatile IReadOnlyList<DeviceInfo> _devices = [];

    public NodeMetrics(ActorRegistry actors, ActorSystem system)
    {
        _actors = actors;
        _cluster = Akka.Cluster.Cluster.Get(system);

        Gauge("fabric.device.memory.used", "By", "Device memory allocated.", d => d.MemoryUsed);
        Gauge("fabric.device.memory.total", "By", "Device memory in all.", d => d.MemoryTotal);
        Gauge("fabric.device.allocations", "{allocation}", "Buffers allocated in device memory.", d => d.Allocations);
        Gauge("fabric.device.contexts", "{context}", "Contexts open on the device (opens of it by clients).", d => d.OpenContexts);
        Gauge("fabric.device.exports", "{export}", "dma-buf exports of the device's buffers.", d => d.Exports);
        Gauge("fabric.device.imports", "{import}", "Buffers of other devices imported into the device's address spaces.", d => d.Imports);
        Gauge("fabric.device.queue.depth", "{submission}", "Submissions queued or running on the device's queues.", d => d.QueueDepth);
        Gauge("fabric.device.queues", "{queue}", "The device's command queues.", d => d.Queues);
        Gauge("fabric.device.fence.waiters", "{waiter}", "Waits on the device's fences not answered yet.", d => d.Waiters);
        _meter.CreateObservableGauge("fabric.device.utilization.ratio", () => _devices.Select(d => new Measurement<double>(d.Utilization, Tags(d))),
            "1", "Share of the device's queues busy, 0 to 1.");
        _meter.CreateObservableGauge("fabric.device.status", () => _devices.SelectMany(d => DeviceStatuses.Select(s =>
            new Measurement<int>(d.Status == s ? 1 : 0, Tags(d, "status", s.ToString().ToLowerInvariant())))),
            "{device}", "1 for the device's status (operational, inreset, malfunction …), 0 for the others.");
        _meter.CreateObservableCounter("fabric.device.submissions", () => _devices.SelectMany(d => (Measurement<long>[])
            [
                new(d.CompletedSubmissions, Tags(d, "outcome", "completed")),
                new(d.FailedSubmissions, Tags(d, "outcome", "failed")),
            ]), "{submission}", "Submissions the device finished, by outcome.");
        _meter.CreateObservableCounter("fabric.device.resets", () => _devices.Select(d => new Measurement<long>(d.Resets, Tags(d))),
            "{reset}", "Resets of the device.");

        _meter.CreateObservableGauge("fabric.cluster.members", Members, "{member}",
            "Cluster members as this node sees them, by status (joining, weaklyup, up, leaving, exiting, down, removed).");
        _meter.CreateObservableGauge("fabric.cluster.members.unreachable", () => _cluster.State.Unreachable.Count, "{member}",
            "Members this node's failure detector finds unreachable.");

        _meter.CreateObservableGauge("fabric.job.tasks", Tasks, "{task}",
            "Tasks of the jobs this node holds (their entities live here), by state: waiting, placed, completed, failed.");
        _meter.CreateObservableGauge("fabric.jobs", () => JobMetrics.Hosted.GroupBy(j => j.Status).Select(g =>
            new Measurement<int>(g.Count(), new KeyValuePair<string, object?>("status", g.Key.ToString().ToLowerInvariant()))),
            "{job}", "Jobs this node holds, by status.");
    }

    /// <summary>Asks the node's devices for their counters, for the scrape that follows.</summary>
    public async Task RefreshAsync(CancellationToken cancel)
    {
        try
        {
            _devices = (await _actors.Get<DeviceManagerKey>().Ask<DeviceRequests.DeviceList>(new DeviceManager.ListLocalDevices(), AskTimeout, cancel)).Devices;
        }
        catch (AskTimeoutException) { } // a busy device manager: the previous counters are published
    }

    private void Gauge(string name, string unit, string description, Func<DeviceInfo, long> value) =>
        _meter.CreateObservableGauge(name, () => _devices.Select(d => new Measurement<long>(value(d), Tags(d))), unit, description);

    private static KeyValuePair<string, object?>[] Tags(DeviceInfo d) => [new("device", d.Id.ToString()), new("node", d.Id.Node)];

    private static KeyValuePair<string, object?>[] Tags(DeviceInfo d, string key, string value) =>
        [new("device", d.Id.ToString()), new("node", d.Id.Node), new(key, value)];

    private IEnumerable<Measurement<int>> Members()
    {
        var members = _cluster.State.Members;
        return Statuses.Select(s => new Measurement<int>(members.Count(m => m.Status == s),
            new KeyValuePair<string, object?>("status", s.ToString().ToLowerInvariant())));
    }

    private static IEnumerable<Measurement<int>> Tasks() =>
        JobMetrics.Hosted.SelectMany(job =>
        {
            var counts = new int[TaskStates.Length];
            foreach (var task in job.Tasks) counts[(int)task.Status]++;
            return TaskStates.Select(s => new Measurement<int>(counts[(int)s],
                new KeyValuePair<string, object?>("job", job.JobId), new KeyValuePair<string, object?>("state", s.ToString().ToLowerInvariant())));
        });

    public void Dispose() => _meter.Dispose();
}
