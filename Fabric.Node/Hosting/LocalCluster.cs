using System.Diagnostics;
using Fabric.Core.Gateway;
using Fabric.Core.Security;
using Fabric.Node.Security;

namespace Fabric.Node.Hosting;

/// <summary>
/// A cluster of <c>fabric node</c> processes on 127.0.0.1 (or each in a network namespace of its own, on an address of
/// its own: <see cref="Options.Namespaces"/>), for the demo, chaos runs, benchmarks and tests. Every node binds
/// the ports the system gives it and reports them (<see cref="NodeEndpoints"/>): the first founds the cluster, the
/// others are given its address as seed; a node started again is given the nodes Up at the time. All share one SQLite
/// journal file, and everything lives under one directory that is deleted at the end (unless kept). Remoting and the
/// data plane are TLS with mutual authentication, as a real cluster's: a CA made for this run alone (in
/// <see cref="CertificatesDirectory"/>) issues each node's certificate and one for a client (<see cref="ClientTls"/>);
/// plain TCP only with <see cref="Options.Insecure"/>.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    public sealed record Options
    {
        public int Nodes { get; init; } = 3;
        public string NamePrefix { get; init; } = "n";
        public int DevicesPerNode { get; init; } = 1;
        public string DeviceMemory { get; init; } = "256MiB";

        /// <summary>Where the nodes keep their files; default a new directory under the system's temp directory.</summary>
        public string? Root { get; init; }

        /// <summary>Keep <see cref="Root"/> (logs, journal) after disposal.</summary>
        public bool KeepFiles { get; init; }

        /// <summary>Called with each line a node writes to stderr (besides its log file).</summary>
        public Action<string, string>? OnNodeError { get; init; }

        /// <summary>Plain TCP between the nodes (<c>--insecure</c>) instead of TLS with a CA made for the run.</summary>
        public bool Insecure { get; init; }

        /// <summary>
        /// Each node a host of its own: a network namespace with its own address on a bridge the run creates
        /// (<see cref="NetworkLab"/>; Linux, root), so that links can be cut for real. The gateways then listen on
        /// the hosts' addresses, with an API token made for the run (<see cref="ApiToken"/>).
        /// </summary>
        public bool Namespaces { get; init; }

        /// <summary>Seeds the choice of the namespaces' private /24 (a replayed run picks the same one when it is free).</summary>
        public int NetworkSeed { get; init; } = Environment.ProcessId;

        /// <summary>How long a node may take to be Up in the cluster.</summary>
        public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(90);
    }

    private readonly Options _options;

    private LocalCluster(Options options, string root, NetworkLab? lab)
    {
        _options = options;
        Root = root;
        Lab = lab;
        DatabasePath = Path.Combine(root, "fabric.db");
        CertificatesDirectory = options.Insecure ? null : Path.Combine(root, "certs");
        ApiToken = lab is null ? null : Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var names = Enumerable.Range(1, options.Nodes).Select(i => $"{options.NamePrefix}{i}").ToList();
        NetworkLab.Host? HostOf(int i) => lab?.Hosts[i];
        if (CertificatesDirectory is { } certificates)
        {
            ClusterCertificates.InitAuthority(certificates, $"local-{Path.GetFileName(root)}").Dispose();
            for (var i = 0; i < names.Count; i++)
                ClusterCertificates.Issue(certificates, names[i], [], HostOf(i) is { } host ? [host.Address] : []).Dispose();
            ClusterCertificates.Issue(certificates, ClusterCertificates.ClientName, [], lab is null ? [] : [lab.BridgeAddress]).Dispose();
        }
        Nodes = [.. names.Select((name, i) => new LocalNode(name, root, DatabasePath, options, Transport(name), HostOf(i), ApiToken))];
    }

    public string Root { get; }
    public string DatabasePath { get; }

    /// <summary>The nodes' hosts (namespaces, bridge) with <see cref="Options.Namespaces"/>, else null.</summary>
    public NetworkLab? Lab { get; }

    /// <summary>The gateways' API token with <see cref="Options.Namespaces"/> (they listen beyond loopback there), else null.</summary>
    public string? ApiToken { get; }

    /// <summary>The host <paramref name="node"/> runs on; only with <see cref="Options.Namespaces"/>.</summary>
    public NetworkLab.Host HostOf(LocalNode node) =>
        node.Host ?? throw new InvalidOperationException($"node {node.Name} runs in this machine's own network: the cluster was started without namespaces");

    /// <summary>The run's CA and the certificates it issued (PEM); null when <see cref="Options.Insecure"/>.</summary>
    public string? CertificatesDirectory { get; }

    /// <summary>A client's TLS for this cluster (<c>FabricClientSystem.Create(tls:)</c>); null when <see cref="Options.Insecure"/>.</summary>
    public ClusterTls? ClientTls => CertificatesDirectory is { } certificates ? ClusterCertificates.LoadTls(certificates, ClusterCertificates.ClientName) : null;

    /// <summary>How node <paramref name="name"/> is told its transport: its certificate's flags, or --insecure.</summary>
    private IReadOnlyList<string> Transport(string name) =>
        CertificatesDirectory is { } certificates ? ClusterCertificates.TlsArguments(certificates, name) : ["--insecure"];
    public IReadOnlyList<LocalNode> Nodes { get; }
    public LocalNode this[string name] => Nodes.FirstOrDefault(n => n.Name == name) ?? throw new ArgumentException($"there is no node {name}");
    public IEnumerable<LocalNode> Running => Nodes.Where(n => n.IsRunning);

    /// <summary>Starts every node and returns once each of them sees all of them Up.</summary>
    public static async Task<LocalCluster> StartAsync(Options options, Action<string> progress, CancellationToken cancel)
    {
        if (options.Nodes < 1) throw new ArgumentException("a local cluster needs at least one node");
        var root = options.Root ?? Path.Combine(Path.GetTempPath(), $"fabric-{Guid.NewGuid():N}"[..19]);
        Directory.CreateDirectory(root);
        NetworkLab? lab = null;
        if (options.Namespaces)
        {
            lab = await NetworkLab.CreateAsync(options.Nodes, options.NetworkSeed, cancel);
            progress($"namespaces: bridge {lab.BridgeName} at {lab.BridgeAddress}/24, a host for each node at {lab.Hosts[0].Address}…{lab.Hosts[^1].Address} " +
                     "(removed at the end; what a killed run leaves, the next run removes)");
        }
        LocalCluster cluster;
        try { cluster = new LocalCluster(options, root, lab); }
        catch
        {
            if (lab is not null) await lab.DisposeAsync();
            throw;
        }
        progress(cluster.CertificatesDirectory is { } certificates
            ? $"TLS between the nodes: a CA for this run in {certificates}, a certificate for each node and one for a client"
            : "plain TCP between the nodes (--insecure)");
        try
        {
            var first = cluster.Nodes[0];
            progress($"starting node {first.Name}, which founds the cluster");
            progress((await first.StartAsync([], cancel)).Describe());
            var others = cluster.Nodes.Skip(1).ToList();
            if (others.Count > 0)
            {
                progress($"starting {string.Join(", ", others.Select(n => n.Name))} with {first.Name} at {first.Endpoint} as seed");
                foreach (var outcome in await Task.WhenAll(others.Select(n => n.StartAsync([first.Endpoint], cancel)))) progress(outcome.Describe());
            }
            foreach (var node in cluster.Nodes) await cluster.AwaitUpAsync(node, cancel);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a killed node again and returns once every running node (it too) sees every running node Up.</summary>
    public async Task<StartOutcome> RestartAsync(LocalNode node, CancellationToken cancel)
    {
        var outcome = await StartAgainAsync(node, cancel);
        foreach (var member in Running.OrderBy(n => n != node)) await AwaitUpAsync(member, cancel);
        return outcome;
    }

    /// <summary>
    /// Starts a killed (or downed) node again, with the nodes Up now as seeds, and returns once it is Up: at its old
    /// address if that port is still free, else at a new one (<see cref="StartOutcome"/> says which); always at a new
    /// one with <paramref name="newPort"/>.
    /// </summary>
    public Task<StartOutcome> StartAgainAsync(LocalNode node, CancellationToken cancel, bool newPort = false) =>
        node.StartAsync([.. Nodes.Where(n => n != node && n.IsReady).Select(n => n.Endpoint)], cancel, newPort);

    /// <summary>Waits until <paramref name="node"/> is Up, counts as many Up members as there are running nodes, and its job region answers.</summary>
    public async Task AwaitUpAsync(LocalNode node, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            if (node.ExitCode is { } code)
                throw new InvalidOperationException($"node {node.Name} exited with code {code} while starting; its log ({node.LogPath}) ends:\n{node.Tail()}");
            var health = await node.HealthAsync(cancel);
            if (health is { Status: "Up", Jobs: Jobs.JobsReadiness.Ready } && health.UpMembers == Running.Count()) return;
            if (clock.Elapsed > _options.StartTimeout)
                throw new TimeoutException($"node {node.Name} was not Up with {Running.Count()} members and its jobs ready within {_options.StartTimeout.TotalSeconds:0} s " +
                                           $"(it says: {(health is null ? "nothing" : $"{health.Status}, {health.UpMembers}/{health.Members} Up, jobs {health.Jobs}")}); its log ends:\n{node.Tail()}");
            await Task.Delay(200, cancel);
        }
    }

    /// <summary>Every running node's devices, asked of each node now (exact counters, not the registry's copy).</summary>
    public async Task<IReadOnlyList<Fabric.Core.Protocol.DeviceInfo>> DevicesAsync(CancellationToken cancel)
    {
        var all = new List<Fabric.Core.Protocol.DeviceInfo>();
        foreach (var node in Running)
        {
            using var gateway = node.GatewayClient(TimeSpan.FromSeconds(10));
            all.AddRange(await GatewayClient.RetryAsync(() => gateway.LocalDevicesAsync(cancel), cancel));
        }
        return all;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes) node.Kill();
        if (Lab is not null) await Lab.DisposeAsync();
        if (_options.KeepFiles) return;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                Directory.Delete(Root, recursive: true);
                return;
            }
            catch (DirectoryNotFoundException) { return; }
            catch (IOException) { await Task.Delay(200); }
            catch (UnauthorizedAccessException) { await Task.Delay(200); }
        }
    }
}
