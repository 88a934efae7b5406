using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using Fabric.Core.Protocol;
using Fabric.Node.Gateway;
using Fabric.Node.Hosting;
using Fabric.Node.Jobs;
using Fabric.Tests.Cluster;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;

namespace Fabric.Tests.Cli;

/// <summary>
/// <c>fabric top</c> run as a process: against a real 2-node cluster its frame shows what the gateway reports, it moves
/// to the other node's gateway when the one it reads is killed, and it ends cleanly on SIGTERM, on mistakes and when no
/// gateway answers.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class TopCommandTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(40);
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-top-{Guid.NewGuid():N}");
    private readonly List<FabricProcess> _processes = [];

    public void Dispose()
    {
        foreach (var process in _processes)
        {
            output.WriteLine($"--- {process.Label} ---\n{process.Output}");
            process.Dispose();
        }
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    private FabricProcess Start(string label, params string[] arguments)
    {
        var process = FabricProcess.Start(label, arguments);
        _processes.Add(process);
        return process;
    }

    /// <summary>
    /// n1 (one 16 MiB device) and n2 (two of 32 MiB) on one SQLite journal, n2 seeded with n1 → their endpoints once
    /// both gateways list 2 members Up, 3 devices and a job region that answers.
    /// </summary>
    private async Task<(NodeEndpoints N1, NodeEndpoints N2, FabricProcess N1Process)> StartClusterAsync()
    {
        NodeEndpoints[] nodes = new NodeEndpoints[2];
        FabricProcess? first = null;
        foreach (var (name, devices, memory, i) in new[] { ("n1", "1", "16MiB", 0), ("n2", "2", "32MiB", 1) })
        {
            var ready = Path.Combine(_root, $"{name}.ready.json");
            var process = Start(name, ["node", "--name", name, "--port", "0", "--http-port", "0", "--ready-file", ready, "--devices", devices,
                "--device-memory", memory, "--data-dir", Path.Combine(_root, name), "--sqlite", Path.Combine(_root, "fabric.db"),
                .. i == 0 ? Array.Empty<string>() : ["--seeds", nodes[0].Endpoint]]);
            first ??= process;
            nodes[i] = await process.WaitForReadyAsync(ready, StartTimeout);
        }
        var clock = Stopwatch.StartNew();
        foreach (var node in nodes)
        {
            using var gateway = new GatewayClient(node.Gateway!);
            while (true)
            {
                try
                {
                    var health = await gateway.HealthAsync(CancellationToken.None);
                    if (health.UpMembers == 2 && health.Jobs == JobsReadiness.Ready && (await gateway.DevicesAsync(CancellationToken.None)).Length == 3) break;
                }
                catch (GatewayException) { }
                if (clock.Elapsed > StartTimeout) throw new TimeoutException($"the 2-node cluster did not form within {StartTimeout.TotalSeconds:0} s");
                await Task.Delay(200);
            }
        }
        return (nodes[0], nodes[1], first!);
    }

    /// <summary>A table row's cells, trimmed; empty for a line that is no row.</summary>
    private static string[] Cells(string line) => line.StartsWith('│') ? [.. line.Split('│')[1..^1].Select(c => c.Trim())] : [];

    /// <summary>The frames printed one after another: each starts at a line beginning with "fabric top".</summary>
    private static List<string[]> Frames(string printed)
    {
        var frames = new List<string[]>();
        foreach (var line in printed.Split('\n').Select(l => l.TrimEnd('\r')))
        {
            if (line.StartsWith("fabric top —", StringComparison.Ordinal)) frames.Add([line]);
            else if (frames.Count > 0) frames[^1] = [.. frames[^1], line];
        }
        return frames;
    }

    private static string MiB(long bytes) => (bytes / (double)(1L << 20)).ToString("0.#", CultureInfo.InvariantCulture);

    /// <summary>The devices as the gateway lists them, once two reads a registry publication apart agree (nothing is moving).</summary>
    private static async Task<DeviceInfo[]> SettledDevicesAsync(GatewayClient gateway)
    {
        static string Key(DeviceInfo[] ds) => string.Join(";", ds.OrderBy(d => d.Id.ToString()).Select(d =>
            $"{d.Id} {d.MemoryUsed} {d.OpenContexts} {d.QueueDepth} {d.CompletedSubmissions} {d.FailedSubmissions} {d.Exports} {d.Imports} {d.Waiters}"));
        var clock = Stopwatch.StartNew();
        var last = await gateway.DevicesAsync(CancellationToken.None);
        while (true)
        {
            await Task.Delay(1200);
            var now = await gateway.DevicesAsync(CancellationToken.None);
            if (Key(now) == Key(last)) return now;
            if (clock.Elapsed > TimeSpan.FromSeconds(20)) throw new TimeoutException($"the devices kept changing: {Key(now)}");
            last = now;
        }
    }

    [Fact]
    public async Task Once_prints_one_frame_with_the_devices_nodes_and_jobs_the_gateway_reports()
    {
        var (n1, n2, _) = await StartClusterAsync();
        using var gateway = new GatewayClient(n1.Gateway!);
        var spec = new JobBuilder("top-e2e").Zeros("x", 4096).Output("y", 4096).Task("copy", t => t.Copy("y", "x")).Build();
        var jobId = await gateway.SubmitAsync(JobJson.Write(spec), CancellationToken.None, "top-e2e-1");
        using (var follow = new GatewaySet([n1.Gateway!]))
            Assert.Equal("Completed", (await follow.FollowAsync(jobId, TimeSpan.FromSeconds(30), _ => { }, CancellationToken.None)).Status);
        var before = await SettledDevicesAsync(gateway);

        var top = Start("fabric top --once", "top", "--once", "--gateway", n1.Gateway!);
        var exit = await top.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var devices = await gateway.DevicesAsync(CancellationToken.None);
        var nodes = await gateway.NodesAsync(CancellationToken.None);

        Assert.Equal(0, exit);
        Assert.Equal("", top.Errors);
        var frame = Assert.Single(Frames(top.Output));
        Assert.StartsWith($"fabric top — reading {n1.Gateway} (n1) · ", frame[0]);
        Assert.Contains("· nodes 2/2 up · jobs 0 running · 3 devices", frame[0]);
        // Every device the gateway lists, and no other, with the figures it reports.
        var rows = frame.Select(Cells).Where(c => c is [var id, ..] && id.Contains("/dev")).ToDictionary(c => c[0]);
        Assert.Equal(devices.Select(d => d.Id.ToString()).Order(), rows.Keys.Order());
        Assert.Contains(devices, d => d.CompletedSubmissions > 0); // the job ran somewhere: the counters are not all zero
        foreach (var d in devices)
        {
            var cells = rows[d.Id.ToString()];
            Assert.Equal("ok", cells[1]);
            Assert.EndsWith($" {MiB(d.MemoryUsed)}/{MiB(d.MemoryTotal)} MiB", cells[2]);
            // Utilization is busy time over uptime: it moves between two reads; one percentage point either way.
            Assert.InRange(int.Parse(cells[3].TrimEnd('%'), CultureInfo.InvariantCulture), (int)Math.Round(d.Utilization * 100) - 1, (int)Math.Round(d.Utilization * 100) + 1);
            Assert.Equal([$"{d.QueueDepth}/{d.Queues}", $"{d.OpenContexts}", $"{d.Exports}", $"{d.Imports}", $"{d.Waiters}", $"{d.CompletedSubmissions}", $"{d.FailedSubmissions}"],
                cells[4..]);
        }
        Assert.Equal(before.OrderBy(d => d.Id.ToString()).Select(d => d.CompletedSubmissions), devices.OrderBy(d => d.Id.ToString()).Select(d => d.CompletedSubmissions));
        Assert.Equal(["16", "32", "32"], devices.OrderBy(d => d.Id.ToString()).Select(d => MiB(d.MemoryTotal)));
        // Every member, the one read marked, with its status, reachability, devices, address and gateway.
        Assert.Equal(2, nodes.Nodes.Length);
        foreach (var n in nodes.Nodes)
        {
            var first = n.Node == "n1" ? "n1 (read)" : n.Node;
            var cells = frame.Select(Cells).Single(c => c is [var name, ..] && name == first);
            Assert.Equal([n.Status, n.Reachable ? "yes" : "no", $"{n.Devices}", n.Address, n.Gateway ?? ""], cells[1..]);
        }
        Assert.Contains(nodes.Nodes, n => n.Node == "n2" && n.Gateway == n2.Gateway);
        // The job, ended, with its tasks done.
        var job = frame.Select(Cells).Single(c => c is [var id, ..] && id == jobId);
        Assert.Equal(["Completed", "1/1", "top-e2e"], [job[1], job[2].Split(' ')[^1], job[3]]);
    }

    [Fact]
    public async Task When_the_node_it_reads_is_killed_the_later_frames_come_from_the_other_and_still_list_its_devices()
    {
        var (n1, n2, n1Process) = await StartClusterAsync();

        var top = Start("fabric top --frames 8", "top", "--frames", "8", "--interval", "0.5", "--gateway", $"{n1.Gateway},{n2.Gateway}");
        await top.WaitForLineAsync($"fabric top — reading {n1.Gateway} (n1)", TimeSpan.FromSeconds(30));
        n1Process.Kill();
        var exit = await top.WaitForExitAsync(TimeSpan.FromSeconds(40));

        var frames = Frames(top.Output);
        Assert.Equal(0, exit);
        Assert.Equal(8, frames.Count);
        Assert.StartsWith($"fabric top — reading {n1.Gateway} (n1) · ", frames[0][0]);
        Assert.DoesNotContain(frames, f => f[0].Contains("no gateway answers"));
        // Once on n2 it stays there, says it switched from n1, and lists n2's two devices.
        var moved = frames.FindIndex(f => f[0].StartsWith($"fabric top — reading {n2.Gateway} (n2) · ", StringComparison.Ordinal));
        Assert.True(moved > 0, "no frame was read from n2");
        Assert.All(frames[moved..], f => Assert.StartsWith($"fabric top — reading {n2.Gateway} (n2) · ", f[0]));
        Assert.All(frames[moved..], f => Assert.StartsWith($"switched from {n1.Gateway} to {n2.Gateway} at ", f[1]));
        Assert.Contains("cannot reach the Fabric gateway at " + n1.Gateway, frames[moved][1]);
        var last = frames[^1].Select(Cells).Where(c => c.Length > 0).ToList();
        string[] devicesOfN2 = ["n2/dev0", "n2/dev1"];
        Assert.Equal(["ok", "ok"], devicesOfN2.Select(id => last.Single(c => c[0] == id)[1]));
        Assert.Contains(last, c => c[0] == "n2 (read)" && c[1] == "Up");
    }

    [Fact]
    public async Task Sigterm_ends_the_view_with_exit_0_after_the_frames_it_printed()
    {
        await using var gateway = await ScriptedGateway.StartAsync(app =>
        {
            app.MapGet("/devices", () => Results.Json(Array.Empty<DeviceInfo>(), HttpGateway.Json));
            app.MapGet("/nodes", () => Results.Json(new NodeList("s1", [new("s1", "akka.tcp://fabric@127.0.0.1:1", "Up", true, 0)], []), HttpGateway.Json));
            app.MapGet("/jobs", () => Results.Json(Array.Empty<JobView>(), HttpGateway.Json));
        });

        var top = Start("fabric top", "top", "--interval", "0.2", "--gateway", gateway.Url);
        await top.WaitForLineAsync("Jobs (0 running, 0 ended): no jobs", TimeSpan.FromSeconds(30));
        top.Terminate();
        var exit = await top.WaitForExitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, exit);
        Assert.Equal("", top.Errors);
        var frames = Frames(top.Output);
        Assert.NotEmpty(frames);
        Assert.All(frames, f => Assert.StartsWith($"fabric top — reading {gateway.Url} (s1) · ", f[0]));
    }

    [Fact]
    public async Task Once_when_no_gateway_answers_prints_no_frame_and_exits_1_with_one_sentence_naming_those_tried()
    {
        string[] urls = [ClosedPort(), ClosedPort()];

        var top = Start("fabric top --once (nothing)", "top", "--once", "--gateway", string.Join(',', urls));
        var exit = await top.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, exit);
        Assert.Empty(Frames(top.Output));
        var line = Assert.Single(top.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith($"fabric top: ENODEV: no gateway answers (tried {urls[0]}, {urls[1]}): cannot reach the Fabric gateway at ", line);
    }

    /// <summary>An http URL on a loopback port that was free a moment ago: nothing answers there.</summary>
    private static string ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
    }

    [Theory]
    [InlineData("--interval 0", "--interval: '0' is not a duration of at least 0.1 s")]
    [InlineData("--interval soon", "--interval: 'soon' is not a duration")]
    [InlineData("--frames 0", "--frames: 0 is not a number of frames")]
    [InlineData("--once --frames 3", "--once is one frame")]
    public async Task A_mistake_in_the_options_is_a_usage_error_in_one_sentence(string arguments, string says)
    {
        var top = Start($"fabric top {arguments}", ["top", .. arguments.Split(' '), "--gateway", "http://127.0.0.1:9"]);
        var exit = await top.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, exit);
        var line = Assert.Single(top.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith($"fabric top: EINVAL: {says}", line);
    }

    [Fact]
    public async Task Help_explains_every_option()
    {
        var top = Start("fabric top --help", "top", "--help");
        var exit = await top.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, exit);
        var options = Fabric.Node.Cli.TopCommand.Build().Options.Select(o => o.Name).Where(n => n != "--help").ToArray();
        Assert.Equal(["--gateway", "--interval", "--once", "--frames"], options);
        foreach (var option in options)
        {
            var line = top.Output.Split('\n').Single(l => l.TrimStart().StartsWith(option + " ", StringComparison.Ordinal));
            Assert.True(line.Trim().Length > option.Length + 40, $"{option} is not explained: {line}");
        }
    }
}
