using System.Net;
using System.Net.Http.Headers;
using Fabric.Core.Gateway;
using Fabric.Node.Hosting;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>A fact that needs network namespaces (Linux, root, ip), reported skipped in one line elsewhere.</summary>
internal sealed class NetnsFactAttribute : FactAttribute
{
    public NetnsFactAttribute()
    {
        if (NetworkLab.Unavailable() is { } why) Skip = $"needs network namespaces: {why}";
    }
}

/// <summary>
/// The lab of hosts in network namespaces: nodes bind their own addresses, the test reaches them over the bridge,
/// a cut link is a real loss of the node's network, a split keeps each side talking to itself, and nothing the lab
/// made survives it (nor what a killed run left).
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class NetworkLabTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-netns-{Guid.NewGuid():N}");
    private const string Token = "lab-token-0123456789abcdef";

    [NetnsFact]
    public async Task Nodes_in_namespaces_form_a_cluster_at_their_own_addresses_and_a_cut_link_loses_the_node_until_healed()
    {
        string[] namespaces;
        await using (var lab = await NetworkLab.CreateAsync(3, seed: 42, CancellationToken.None))
        {
            namespaces = [.. lab.Hosts.Select(h => h.Namespace)];
            Assert.Equal(["h1", "h2", "h3"], lab.Hosts.Select(h => h.Name));
            Assert.All(lab.Hosts, h => Assert.StartsWith(lab.Subnet + ".", h.Address.ToString()));
            Assert.Equal(3, lab.Hosts.Select(h => h.Address).Distinct().Count());

            using var n1 = Node(lab, 1, seed: null);
            using var n2 = Node(lab, 2, seed: lab[1]);
            using var n3 = Node(lab, 3, seed: lab[1]);
            var ready = await Task.WhenAll(new[] { (n1, 1), (n2, 2), (n3, 3) }.Select(n => n.Item1.WaitForReadyAsync(Ready(n.Item2), TimeSpan.FromSeconds(90))));
            Assert.All(ready.Zip(lab.Hosts), p => Assert.Equal($"akka.tcp://fabric@{p.Item2.Address}:4053", p.Item1.Address));
            using var http = Client(lab[1]);
            await AwaitAsync(async () => (await Nodes(http)).Count(n => n.Status == "Up" && n.Reachable) == 3, TimeSpan.FromSeconds(60), "3 members up");

            // A split: h3 alone on the second bridge. The majority (n1, n2) downs and removes n3; h3 cannot be reached.
            await lab.SplitAsync([lab[3]], CancellationToken.None);
            Assert.Equal(Link.Down, await ProbeAsync(lab[3]));
            await AwaitAsync(async () => (await Nodes(http)).All(n => n.Node != "n3"), TimeSpan.FromSeconds(60), "n3 removed by the majority");
            // Alone, n3 downs itself, and a downed node ends its process at once (DownedExit), saying why.
            Assert.Equal(3, await n3.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains("fabric node n3: the cluster downed this node; its process ends now (exit code 3)", n3.Errors);
            await lab.HealAsync(CancellationToken.None);
            Assert.Equal(Link.Up, await HealedAsync(lab[3]));

            // A cut link: h2 reaches nobody (this process included) until healed; h1 answers throughout.
            await lab.CutAsync(lab[2], CancellationToken.None);
            Assert.Equal(Link.Down, await ProbeAsync(lab[2]));
            Assert.Equal(Link.Up, await ProbeAsync(lab[1]));
            await lab.HealAsync(CancellationToken.None);
            Assert.Equal(Link.Up, await HealedAsync(lab[2]));

            // One way: h1 cannot send to h2 (its packets to h2 are dropped), h2 still reaches this process.
            await lab.CutOneWayAsync(lab[1], lab[2], CancellationToken.None);
            Assert.Contains("blackhole " + lab[2].Address, await Ip("-n", lab[1].Namespace, "route", "show"));
            await lab.HealAsync(CancellationToken.None);
            Assert.DoesNotContain("blackhole", await Ip("-n", lab[1].Namespace, "route", "show"));
            output.WriteLine($"n3:\n{n3.Output}");
            Assert.Contains((await Nodes(http)), n => n.Node == "n1" && n.Status == "Up");
        }
        var left = await Ip("netns", "list");
        Assert.All(namespaces, ns => Assert.DoesNotContain(ns, left));
    }

    [NetnsFact]
    public async Task What_a_killed_run_left_behind_is_swept_and_a_live_runs_is_not()
    {
        // A namespace and bridge named after a process that is gone, as a SIGKILLed run leaves them.
        const string stale = "fabric-999999-beef-h1";
        await Ip("netns", "add", stale);
        await Ip("link", "add", "fbrbeef", "type", "bridge");
        await Ip("link", "set", "fbrbeef", "alias", "fabric-999999");
        await using var live = await NetworkLab.CreateAsync(1, seed: 7, CancellationToken.None); // sweeps on creation

        var namespaces = await Ip("netns", "list");
        var bridges = await Ip("-o", "link", "show", "type", "bridge");
        Assert.DoesNotContain(stale, namespaces);
        Assert.DoesNotContain("fbrbeef", bridges);
        Assert.Contains(live.Hosts[0].Namespace, namespaces);
        await NetworkLab.SweepAsync(CancellationToken.None); // this process is alive: its lab stays
        Assert.Contains(live.Hosts[0].Namespace, await Ip("netns", "list"));
    }

    private FabricProcess Node(NetworkLab lab, int index, NetworkLab.Host? seed)
    {
        var host = lab[index];
        List<string> args = ["node", "--name", $"n{index}", "--host", host.Address.ToString(), "--port", "4053", "--http-bind", host.Address.ToString(),
            "--http-port", "5080", "--api-token", Token, "--ready-file", Ready(index), "--devices", "1", "--device-memory", "16MiB",
            "--data-dir", Path.Combine(_root, $"n{index}"), "--sqlite", Path.Combine(_root, $"n{index}.db")];
        if (seed is not null) args.AddRange(["--seeds", $"{seed.Address}:4053"]);
        return FabricProcess.StartInNamespace($"n{index}", host.Namespace, [.. args]);
    }

    private string Ready(int index) => Path.Combine(_root, $"n{index}.ready.json");

    private static HttpClient Client(NetworkLab.Host host, TimeSpan? timeout = null)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://{host.Address}:5080/"), Timeout = timeout ?? TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        return http;
    }

    private enum Link { Up, Down }

    /// <summary>A TCP connect to the host's Akka port: answered (accepted or refused) means its link carries; no answer in 2 s, that it does not.</summary>
    /// <summary>
    /// The link of a healed host, probed for up to 10 s: the neighbour entry the cut left failed is resolved again on
    /// the kernel's schedule, and until then a connect fails at once with "no route to host".
    /// </summary>
    private static async Task<Link> HealedAsync(NetworkLab.Host host)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var link = await ProbeAsync(host);
            if (link == Link.Up || clock.Elapsed > TimeSpan.FromSeconds(10)) return link;
            await Task.Delay(250);
        }
    }

    private static async Task<Link> ProbeAsync(NetworkLab.Host host)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try { await socket.ConnectAsync(new IPEndPoint(host.Address, 4053), timeout.Token); return Link.Up; }
        catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.ConnectionRefused) { return Link.Up; }
        catch (OperationCanceledException) { return Link.Down; }
        catch (System.Net.Sockets.SocketException) { return Link.Down; } // unreachable host or network
    }

    private static async Task<IReadOnlyList<NodeStatus>> Nodes(HttpClient http)
    {
        try { return (await System.Net.Http.Json.HttpClientJsonExtensions.GetFromJsonAsync<NodeList>(http, "nodes", GatewayJson.Options))!.Nodes; }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return []; }
    }

    private static async Task AwaitAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not within {timeout.TotalSeconds:0} s: {what}");
            await Task.Delay(250);
        }
    }

    /// <summary>What <c>ip</c> prints for <paramref name="arguments"/> (standard output).</summary>
    internal static async Task<string> Ip(params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(start)!;
        var text = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return text;
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }
}
