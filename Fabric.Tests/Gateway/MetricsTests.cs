using System.Globalization;
using System.Text.RegularExpressions;
using Fabric.Core.Gateway;
using Fabric.Tests.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Gateway;

/// <summary>
/// <c>GET /metrics</c> of real nodes, parsed as Prometheus text: the device gauges equal what the gateway reports of the
/// same devices, the cluster's members are counted by status, and a job that ran across the nodes shows in its node's
/// task gauge, task-duration histogram and journal-write histogram, and in the data-plane bytes of the nodes that
/// imported its buffers.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class MetricsTests(ClusterFixture cluster, ITestOutputHelper output) : JobScenario<ClusterFixture>(cluster, output)
{
    [Fact]
    public async Task Each_node_exports_its_devices_members_and_the_jobs_it_ran_in_the_prometheus_format()
    {
        var spec = WideJob("metrics", width: 4, n: 128);
        var jobId = await SubmitAsync(spec, "n1");
        var view = await AwaitJobAsync(jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromSeconds(120), "n1");
        AssertEachTaskCompletedOnce(view);
        await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.MemoryUsed == 0 && d.OpenContexts == 0), TimeSpan.FromSeconds(30));

        var scrapes = new Dictionary<string, PrometheusText>();
        foreach (var member in Cluster.Members)
        {
            using var http = new HttpClient { BaseAddress = new Uri(member.Gateway + "/") };
            using var gateway = new GatewayClient(member.Gateway);
            var before = await gateway.LocalDevicesAsync(CancellationToken.None);
            using var response = await http.GetAsync("metrics");
            var text = await response.Content.ReadAsStringAsync();
            var after = await gateway.LocalDevicesAsync(CancellationToken.None);
            Output.WriteLine($"--- {member.Name}: {response.Content.Headers.ContentType}\n{text}");
            Assert.True(response.IsSuccessStatusCode, $"{member.Name}: {(int)response.StatusCode}");
            Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.MediaType);
            var metrics = scrapes[member.Name] = PrometheusText.Parse(text);

            Assert.Equal(["gauge"], metrics.Types("fabric_device_memory_used_bytes"));
            Assert.Equal(["counter"], metrics.Types("fabric_device_submissions_total"));
            foreach (var device in before)
            {
                var id = device.Id.ToString();
                var labels = new Dictionary<string, string> { ["device"] = id, ["node"] = member.Name };
                Assert.Equal(device.MemoryTotal, metrics.Single("fabric_device_memory_total_bytes", labels));
                Assert.Equal(0, metrics.Single("fabric_device_memory_used_bytes", labels)); // the job released all it held
                Assert.Equal(device.Queues, metrics.Single("fabric_device_queues", labels));
                Assert.Equal(0, metrics.Single("fabric_device_contexts", labels));
                Assert.Equal(1, metrics.Single("fabric_device_status", new(labels) { ["status"] = "operational" }));
                var done = metrics.Single("fabric_device_submissions_total", new(labels) { ["outcome"] = "completed" });
                var later = after.Single(d => d.Id == device.Id).CompletedSubmissions;
                Assert.InRange(done, device.CompletedSubmissions, later);
                Assert.InRange(metrics.Single("fabric_device_utilization_ratio", labels), 0, 1);
            }
            Assert.Equal(before.Length, metrics.Samples("fabric_device_memory_total_bytes").Count);
            Assert.Equal(ClusterFixture.Size, metrics.Single("fabric_cluster_members", new() { ["status"] = "up" }));
            Assert.Equal(0, metrics.Single("fabric_cluster_members_unreachable", []));
        }

        // The job's node holds the job: its tasks all completed, each task's run and the journal's writes timed.
        var jobNode = await NodeNameAsync(view.RunNodes[^1], "n1");
        var job = scrapes[jobNode];
        Assert.Equal(view.Tasks, job.Single("fabric_job_tasks", new() { ["job"] = jobId, ["state"] = "completed" }));
        Assert.Equal(0, job.Single("fabric_job_tasks", new() { ["job"] = jobId, ["state"] = "waiting" }));
        Assert.Equal(["histogram"], job.Types("fabric_job_task_duration_seconds"));
        Assert.True(job.Single("fabric_job_task_duration_seconds_count", []) >= view.Tasks);
        Assert.True(job.Single("fabric_job_journal_write_duration_seconds_count", []) >= 1);
        var infinity = job.Single("fabric_job_task_duration_seconds_bucket", new() { ["le"] = "+Inf" });
        Assert.Equal(job.Single("fabric_job_task_duration_seconds_count", []), infinity);
        foreach (var (name, metrics) in scrapes.Where(s => s.Key != jobNode))
            Assert.DoesNotContain(metrics.Samples("fabric_job_tasks"), s => s.Labels.GetValueOrDefault("job") == jobId);

        // Tasks on several nodes read each other's buffers over the data plane: some node counted bytes and transfers.
        var bytes = scrapes.Values.Sum(m => m.Samples("fabric_data_plane_transferred_bytes_total").Sum(s => s.Value));
        var transfers = scrapes.Values.Sum(m => m.Samples("fabric_data_plane_transfer_duration_seconds_count").Sum(s => s.Value));
        Assert.True(bytes >= 128 * 128 * 4, $"{bytes} bytes over the data plane");
        Assert.True(transfers >= 1, $"{transfers} transfers");
    }
}

/// <summary>Prometheus text exposition, as far as a test reads it: samples with their labels, and each metric's # TYPE.</summary>
public sealed partial class PrometheusText
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    private readonly List<Sample> _samples = [];
    private readonly Dictionary<string, List<string>> _types = [];

    [GeneratedRegex("""^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?""")]
    private static partial Regex Label();

    public static PrometheusText Parse(string text)
    {
        var parsed = new PrometheusText();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                if (!parsed._types.TryGetValue(parts[2], out var types)) parsed._types[parts[2]] = types = [];
                types.Add(parts[3]);
                continue;
            }
            if (line.StartsWith('#')) continue;
            var match = SampleLine().Match(line);
            if (!match.Success) throw new FormatException($"not a Prometheus sample line: {line}");
            var labels = Label().Matches(match.Groups[2].Value).ToDictionary(m => m.Groups[1].Value,
                m => m.Groups[2].Value.Replace("\\\"", "\"").Replace("\\n", "\n").Replace("\\\\", "\\"));
            parsed._samples.Add(new Sample(match.Groups[1].Value, labels, ParseValue(match.Groups[3].Value)));
        }
        return parsed;
    }

    private static double ParseValue(string text) => text switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
    };

    public IReadOnlyList<string> Types(string name) => _types.GetValueOrDefault(name) ?? [];

    public IReadOnlyList<Sample> Samples(string name) => [.. _samples.Where(s => s.Name == name)];

    /// <summary>The value of the one sample of <paramref name="name"/> whose labels include <paramref name="labels"/>.</summary>
    public double Single(string name, Dictionary<string, string> labels)
    {
        var matching = _samples.Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value)).ToList();
        if (matching.Count != 1)
            throw new InvalidOperationException($"{matching.Count} samples of {name} with {string.Join(",", labels.Select(l => $"{l.Key}={l.Value}"))}, not one");
        return matching[0].Value;
    }
}
