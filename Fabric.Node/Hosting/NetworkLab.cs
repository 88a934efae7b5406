using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;

namespace Fabric.Node.Hosting;

/// <summary>
/// Hosts of their own on one machine (Linux, root, <c>ip</c>): a private /24 on a bridge this run creates, and for each
/// host a network namespace joined to the bridge by a veth pair, with its own address (…​.11, .12, …; the bridge is
/// .1, so this process reaches every host). A process started in a host's namespace (<see cref="Start"/>) sees only
/// that host's address and loopback. Faults are real link faults: <see cref="CutAsync"/> takes a host's link down,
/// <see cref="SplitAsync"/> moves a group of hosts to a second bridge (each group talks among itself, not to the other),
/// <see cref="CutOneWayAsync"/> drops what one host sends to another (a blackhole route in the sender's namespace: the
/// other direction still carries packets, though TCP, needing both, breaks), and <see cref="HealAsync"/> undoes them all.
/// <para>
/// Everything it creates is named after this process (namespaces <c>fabric-PID-ID-hN</c>, bridges <c>fbrID</c> and
/// <c>fbsID</c> with the alias <c>fabric-PID</c>) and removed by <see cref="DisposeAsync"/>; what a killed run left
/// behind is removed by the next one (<see cref="SweepAsync"/>: the owner's process is gone). It touches no address,
/// route or link it did not create.
/// </para>
/// </summary>
public sealed partial class NetworkLab : IAsyncDisposable
{
    private readonly string _id;
    private readonly List<Host> _hosts = [];
    private bool _split;
    private readonly List<(Host From, Host To)> _oneWay = [];

    public sealed record Host(int Index, string Namespace, string Veth, IPAddress Address)
    {
        public string Name => $"h{Index}";
    }

    private NetworkLab(string id, string subnet) => (_id, Subnet) = (id, subnet);

    /// <summary>The run's /24, e.g. <c>10.213.57</c> (without the last octet).</summary>
    public string Subnet { get; }

    public IPAddress BridgeAddress => IPAddress.Parse($"{Subnet}.1");
    public IReadOnlyList<Host> Hosts => _hosts;
    private string Bridge => $"fbr{_id}";

    /// <summary>The bridge's interface name, e.g. <c>fbr1a2b</c>.</summary>
    public string BridgeName => Bridge;
    private string SplitBridge => $"fbs{_id}";
    private static string Owner => $"fabric-{Environment.ProcessId}";

    /// <summary>Why this machine cannot make a lab (not Linux, not root, no <c>ip</c>), or null when it can.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "network namespaces need Linux";
        if (Environment.UserName != "root" && !IsRoot()) return "network namespaces need root (ip netns add)";
        return FindIp() is null ? "the 'ip' command (iproute2) is not installed" : null;
    }

    private static bool IsRoot() => File.Exists("/proc/self/status") &&
        File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal))?.Split('\t', StringSplitOptions.RemoveEmptyEntries) is [_, "0", ..];

    private static string? FindIp() => new[] { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" }.FirstOrDefault(File.Exists);

    /// <summary>Creates <paramref name="hosts"/> hosts on a new bridge, in a free private /24 chosen from <paramref name="seed"/>.</summary>
    public static async Task<NetworkLab> CreateAsync(int hosts, int seed, CancellationToken cancel)
    {
        if (Unavailable() is { } why) throw new InvalidOperationException(why);
        if (hosts is < 1 or > 200) throw new ArgumentOutOfRangeException(nameof(hosts), "1 to 200 hosts");
        await SweepAsync(cancel);
        var used = await RunAsync(["-4", "-o", "addr", "show"], cancel) + await RunAsync(["-4", "route", "show", "table", "all"], cancel);
        var random = new Random(seed);
        string? subnet = null;
        for (var attempt = 0; attempt < 64 && subnet is null; attempt++)
        {
            var candidate = $"10.{random.Next(200, 250)}.{random.Next(0, 256)}";
            if (!used.Contains(candidate + ".", StringComparison.Ordinal)) subnet = candidate;
        }
        if (subnet is null) throw new InvalidOperationException("no free 10.x.y.0/24 found for the lab's bridge");
        var lab = new NetworkLab(Convert.ToHexStringLower(BitConverter.GetBytes(random.Next()))[..4], subnet);
        try
        {
            await RunAsync(["link", "add", lab.Bridge, "type", "bridge"], cancel);
            await RunAsync(["link", "set", lab.Bridge, "alias", Owner], cancel);
            await RunAsync(["addr", "add", $"{lab.BridgeAddress}/24", "dev", lab.Bridge], cancel);
            await RunAsync(["link", "set", lab.Bridge, "up"], cancel);
            for (var i = 1; i <= hosts; i++) await lab.AddHostAsync(i, cancel);
            return lab;
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    private async Task AddHostAsync(int index, CancellationToken cancel)
    {
        var host = new Host(index, $"{Owner}-{_id}-h{index}", $"fv{_id}{index}", IPAddress.Parse($"{Subnet}.{10 + index}"));
        _hosts.Add(host);
        await RunAsync(["netns", "add", host.Namespace], cancel);
        await RunAsync(["link", "add", host.Veth, "type", "veth", "peer", "name", "eth0", "netns", host.Namespace], cancel);
        await RunAsync(["link", "set", host.Veth, "master", Bridge], cancel);
        await RunAsync(["link", "set", host.Veth, "up"], cancel);
        await InAsync(host, ["link", "set", "lo", "up"], cancel);
        await InAsync(host, ["addr", "add", $"{host.Address}/24", "dev", "eth0"], cancel);
        await InAsync(host, ["link", "set", "eth0", "up"], cancel);
    }

    public Host this[int index] => _hosts.Single(h => h.Index == index);

    /// <summary>How to start <paramref name="program"/> inside <paramref name="host"/>'s namespace.</summary>
    public static ProcessStartInfo Start(Host host, string program, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(FindIp()!) { UseShellExecute = false };
        foreach (var argument in new[] { "netns", "exec", host.Namespace, program }.Concat(arguments)) start.ArgumentList.Add(argument);
        return start;
    }

    /// <summary>Takes <paramref name="host"/>'s link down: it reaches nobody, and nobody reaches it.</summary>
    public Task CutAsync(Host host, CancellationToken cancel) => RunAsync(["link", "set", host.Veth, "down"], cancel);

    /// <summary>Splits the hosts in two: <paramref name="group"/> on a bridge of their own, the others where they were.</summary>
    public async Task SplitAsync(IReadOnlyCollection<Host> group, CancellationToken cancel)
    {
        if (!_split)
        {
            await RunAsync(["link", "add", SplitBridge, "type", "bridge"], cancel);
            await RunAsync(["link", "set", SplitBridge, "alias", Owner], cancel);
            await RunAsync(["link", "set", SplitBridge, "up"], cancel);
            _split = true;
        }
        foreach (var host in group) await RunAsync(["link", "set", host.Veth, "master", SplitBridge], cancel);
    }

    /// <summary>Drops every packet <paramref name="from"/> sends to <paramref name="to"/> (the other direction still carries packets).</summary>
    public async Task CutOneWayAsync(Host from, Host to, CancellationToken cancel)
    {
        await InAsync(from, ["route", "add", "blackhole", $"{to.Address}/32"], cancel);
        _oneWay.Add((from, to));
    }

    /// <summary>Undoes every fault: links up, every host back on the main bridge, blackhole routes removed.</summary>
    public async Task HealAsync(CancellationToken cancel)
    {
        foreach (var (from, to) in _oneWay) await InAsync(from, ["route", "del", "blackhole", $"{to.Address}/32"], cancel);
        _oneWay.Clear();
        foreach (var host in _hosts)
        {
            await RunAsync(["link", "set", host.Veth, "master", Bridge], cancel);
            await RunAsync(["link", "set", host.Veth, "up"], cancel);
        }
    }

    /// <summary>Removes what runs whose process is gone left behind: their namespaces and bridges (never this run's, nor a live one's).</summary>
    public static async Task SweepAsync(CancellationToken cancel)
    {
        foreach (var line in (await RunAsync(["netns", "list"], cancel)).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            if (OwnedNamespace().Match(line) is { Success: true } m && !Alive(int.Parse(m.Groups[1].Value)))
                await RunAsync(["netns", "del", m.Groups[0].Value], cancel, check: false);
        foreach (var line in (await RunAsync(["-o", "link", "show", "type", "bridge"], cancel)).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            if (OwnedBridge().Match(line) is { Success: true } m && !Alive(int.Parse(m.Groups[2].Value)))
                await RunAsync(["link", "del", m.Groups[1].Value], cancel, check: false);
    }

    [GeneratedRegex(@"^fabric-(\d+)-[0-9a-f]{4}-h\d+")]
    private static partial Regex OwnedNamespace();

    [GeneratedRegex(@"^\d+: (fb[rs][0-9a-f]{4}):.*alias fabric-(\d+)")]
    private static partial Regex OwnedBridge();

    private static bool Alive(int pid) => pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}");

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts) await RunAsync(["netns", "del", host.Namespace], CancellationToken.None, check: false);
        foreach (var host in _hosts) await RunAsync(["link", "del", host.Veth], CancellationToken.None, check: false); // gone with its namespace, normally
        await RunAsync(["link", "del", SplitBridge], CancellationToken.None, check: false);
        await RunAsync(["link", "del", Bridge], CancellationToken.None, check: false);
    }

    private static Task<string> InAsync(Host host, string[] arguments, CancellationToken cancel) =>
        RunAsync(["-n", host.Namespace, .. arguments], cancel);

    /// <summary>Runs <c>ip</c>; its stdout. A failure (when <paramref name="check"/>) → InvalidOperationException with what ip said.</summary>
    private static async Task<string> RunAsync(string[] arguments, CancellationToken cancel, bool check = true)
    {
        var start = new ProcessStartInfo(FindIp() ?? "ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("ip did not start");
        var output = process.StandardOutput.ReadToEndAsync(cancel);
        var errors = process.StandardError.ReadToEndAsync(cancel);
        await process.WaitForExitAsync(cancel);
        if (check && process.ExitCode != 0)
            throw new InvalidOperationException($"ip {string.Join(' ', arguments)} failed ({process.ExitCode}): {(await errors).Trim()}");
        return await output;
    }
}
