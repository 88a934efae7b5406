using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Fabric.Tests.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Gateway;

/// <summary>
/// The dashboard in headless Chromium against three real nodes, after a job that lost a node on the way: read back
/// through the data-* attributes <c>dashboard.js</c> puts on what it draws, it shows every device with its memory and
/// utilization, every node with its status, the job with its progress, and a timeline bar for every attempt.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class DashboardBrowserTests(ClusterFixture cluster, ITestOutputHelper output) : JobScenario<ClusterFixture>(cluster, output)
{
    /// <summary>The page's own time Chromium gives it: a few polls (every 1.5 s) after the first.</summary>
    private static readonly TimeSpan PageTime = TimeSpan.FromSeconds(5);

    [ChromiumFact]
    public async Task The_dashboard_shows_every_device_node_and_the_job_with_a_timeline_bar_per_attempt()
    {
        var spec = WideJob("dashboard", width: 6, n: 512);
        var jobId = await SubmitAsync(spec, "n1");
        // n3 is killed while one of its devices runs an attempt, so the timeline has a node loss and the work done again.
        var seen = await AwaitJobAsync(jobId, v => GatewaySet.HasEnded(v) || RunsOn(v, "n3"), TimeSpan.FromSeconds(120), "n1");
        var killed = !GatewaySet.HasEnded(seen);
        if (killed) Cluster["n3"].Process.Kill();
        var view = await AwaitJobAsync(jobId, GatewaySet.HasEnded, TimeSpan.FromSeconds(180), "n1", "n2");
        Assert.True(view.Status == "Completed", Describe(view));
        using var gateway = new GatewayClient(Cluster["n1"].Gateway);
        await UntilAsync(() => gateway.NodesAsync(CancellationToken.None),
            list => list.Nodes.All(n => n.Status == "Up" && n.Reachable) && (!killed || list.Removed.Any(r => r.Node == "n3")),
            TimeSpan.FromSeconds(60), "the members all Up, and n3 removed if it was killed");
        await Cluster.AwaitDevicesAsync(ds => ds.All(d => d.OpenContexts == 0 && d.MemoryUsed == 0), TimeSpan.FromSeconds(30));
        // Memory in use while the page is read, so that what it shows is not only zeros.
        using var system = FabricClientSystem.Create();
        await using var client = await FabricClient.ConnectAsync(system, Cluster["n1"].Endpoint);
        await using var first = await client.OpenAsync(new DeviceId("n1", 0));
        await using var second = await client.OpenAsync(new DeviceId("n2", 1));
        await first.AllocateAsync(12 << 20);
        await second.AllocateAsync(40 << 20);
        await Cluster.AwaitDevicesAsync(ds => ds.Count(d => d.MemoryUsed > 0) == 2, TimeSpan.FromSeconds(30));
        using var http = new HttpClient();
        var timeline = JsonNode.Parse(await http.GetStringAsync($"{Cluster["n1"].Gateway}/jobs/{jobId}/timeline"))!.AsObject();
        var url = $"{Cluster["n1"].Gateway}/?job={Uri.EscapeDataString(jobId)}";

        // Utilization moves while the page is read (busy time over uptime, published every second): every answer
        // /devices gave meanwhile is recorded, and what the page shows must be one of them.
        using var sampling = new CancellationTokenSource();
        var answers = new ConcurrentBag<DeviceInfo[]>();
        var sampler = SampleAsync(gateway, answers, sampling.Token);
        var nodesBefore = await gateway.NodesAsync(CancellationToken.None);
        var html = await Chromium.DumpDomAsync(url, PageTime);
        var nodesAfter = await gateway.NodesAsync(CancellationToken.None);
        await sampling.CancelAsync();
        await sampler;
        var screenshot = Path.Combine(AppContext.BaseDirectory, "screenshots", $"dashboard-{jobId}.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await Chromium.ScreenshotAsync(url, screenshot, PageTime);

        var dom = DumpedDom.Parse(html);
        Output.WriteLine($"screenshot: {screenshot}\n{(killed ? "n3 killed while it ran an attempt" : "the job ended before n3 ran an attempt")}; {Describe(view)}");
        Assert.Equal(["devices", "jobs", "nodes", "timeline"], (dom.Single(e => e.Tag == "body")["data-loaded"] ?? "").Split(' '));
        Assert.DoesNotContain(dom, e => HasClass(e, "error")); // a section whose request failed
        // No value missing from what is drawn (a null child written as the text "null", a NaN width, an undefined label).
        Assert.DoesNotMatch(@">[^<]*\b(null|undefined|NaN)\b[^<]*<", html);
        Assert.DoesNotMatch("=\"(NaN|undefined|null)\"", html);

        // Devices: every one /devices lists, each with memory used and total and utilization as /devices gave them.
        var listed = answers.SelectMany(a => a).GroupBy(d => d.Id.ToString()).ToDictionary(g => g.Key,
            g => g.Select(d => (d.MemoryUsed, d.MemoryTotal, d.Utilization)).ToHashSet());
        var cards = dom.Where(e => e.Tag == "div" && HasClass(e, "device")).ToList();
        Assert.Equal(answers.Select(a => string.Join(",", a.Select(d => d.Id.ToString()).Order())).Distinct(), [string.Join(",", cards.Select(c => c["data-device"]).Order())]);
        foreach (var card in cards)
        {
            var shown = (long.Parse(card["data-memory-used"]!), long.Parse(card["data-memory-total"]!), double.Parse(card["data-utilization"]!, CultureInfo.InvariantCulture));
            Assert.True(listed[card["data-device"]!].Contains(shown), $"{card["data-device"]} shows {shown}; /devices said {string.Join(", ", listed[card["data-device"]!])}");
        }
        Assert.Equal(2, cards.Count(c => long.Parse(c["data-memory-used"]!) > 0));

        // Nodes: every member with its status; n3, if killed, among the removed.
        Assert.Equal(nodesBefore.Nodes.Select(n => (n.Node, n.Status)).Order(), nodesAfter.Nodes.Select(n => (n.Node, n.Status)).Order());
        Assert.Equal(nodesAfter.Nodes.Select(n => (n.Node, n.Status, n.Reachable)).Order(),
            dom.Where(e => e.Tag == "tr" && HasClass(e, "node-row")).Select(e => (e["data-node"]!, e["data-status"]!, bool.Parse(e["data-reachable"]!))).Order());
        Assert.Equal(nodesAfter.Removed.Select(r => (r.Node, r.Reason)).Order(),
            dom.Where(e => e.Has("data-removed-node")).Select(e => (e["data-removed-node"]!, e["data-reason"]!)).Order());

        // The job: its status and progress, overall and per stage.
        var row = dom.Single(e => e.Tag == "tr" && e["data-job"] == jobId);
        Assert.Equal((view.Status, view.CompletedTasks, view.Tasks), (row["data-status"], int.Parse(row["data-done"]!), int.Parse(row["data-total"]!)));
        var stages = dom.SkipWhile(e => e != row).Skip(1).TakeWhile(e => e["data-job"] is null).Where(e => HasClass(e, "stage"))
            .Select(e => new JobView.StageView(int.Parse(e["data-stage"]!), int.Parse(e["data-tasks"]!), int.Parse(e["data-completed"]!)));
        Assert.Equal(view.Stages, stages);

        // The timeline: a bar per attempt, as the timeline document and GET /jobs/{id} have them.
        var picture = dom.Single(e => e.Tag == "svg" && e["data-timeline-job"] == jobId);
        var bars = dom.Where(e => e.Tag == "rect" && HasClass(e, "attempt"))
            .Select(e => (e["data-task"]!, int.Parse(e["data-attempt"]!), e["data-node"]!, e["data-device"]!, e["data-outcome"]!)).Order().ToList();
        var attempts = view.TaskDetails.SelectMany(t => t.AttemptLog.Select(a => (t.Name, a.Number, a.Node, a.Device, a.Outcome))).Order().ToList();
        Assert.Equal(attempts, bars);
        Assert.Equal(JobTimeline.Count(timeline).Attempts, bars.Count);
        Assert.Equal(bars.Count, int.Parse(picture["data-attempts"]!));
        // Drawn hatched: the attempts that computed again what was lost, as many as the job counts.
        Assert.Equal(view.TaskDetails.Sum(t => t.Recomputations), dom.Count(e => HasClass(e, "attempt") && e["data-recomputation"] == "true"));
        var losses = JobTimeline.Count(timeline).NodeLosses;
        Assert.Equal(losses, int.Parse(dom.Single(e => e.Has("data-node-losses"))["data-node-losses"]!));
        Assert.Equal(losses, dom.Count(e => e["data-category"] is "nodelost" or "runlost"));
        // A marker for every instant; the job's node lost named as the member it was.
        var names = nodesAfter.Nodes.Select(n => (n.Address, n.Node)).Concat(nodesAfter.Removed.Select(r => (r.Address, r.Node))).ToDictionary();
        var markers = JobTimelineTests.Events(timeline).Where(e => JobTimelineTests.Text(e, "ph") == "i").Select(e =>
        {
            var name = JobTimelineTests.Text(e, "name")!;
            return (name, JobTimelineTests.Text(e["args"], "node") is { } node && JobTimelineTests.Text(e, "cat") == "runlost" && names.TryGetValue(node, out var member)
                ? $"job's node {member} lost" : name);
        });
        Assert.Equal(markers.Order(), dom.Where(e => HasClass(e, "marker")).Select(e => (e["data-marker"]!, e["data-label"]!)).Order());
        if (killed) Assert.True(losses >= 1, "n3 was killed while it ran an attempt, and the timeline shows no loss");
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], (await File.ReadAllBytesAsync(screenshot))[..4]);
    }

    private static bool RunsOn(JobView view, string node) => view.TaskDetails.Any(t => t.AttemptLog.Any(a => a.Node == node && a.Outcome == "Running"));

    private static bool HasClass(DumpedDom.Element e, string name) => (e["class"] ?? "").Split(' ').Contains(name);

    /// <summary>Reads <c>/devices</c> every 100 ms until cancelled, adding each answer to <paramref name="answers"/>.</summary>
    private static async Task SampleAsync(GatewayClient gateway, ConcurrentBag<DeviceInfo[]> answers, CancellationToken cancel)
    {
        try
        {
            while (true)
            {
                answers.Add(await gateway.DevicesAsync(cancel));
                await Task.Delay(100, cancel);
            }
        }
        catch (OperationCanceledException) { }
        answers.Add(await gateway.DevicesAsync(CancellationToken.None));
    }
}
