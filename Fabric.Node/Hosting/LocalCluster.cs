using System.Diagnostics;
using Fabric.Core.Gateway;

namespace Fabric.Node.Hosting;

/// <summary>
/// A cluster of <c>fabric node</c> processes on 127.0.0.1, for the demo, chaos runs and benchmarks. Every node binds
/// the ports the system gives it and reports them (<see cref="NodeEndpoints"/>): the first founds the cluster, the
/// others are given its address as seed; a node started again is given the nodes Up at the time. All share one SQLite
/// journal file, and everything lives under one directory that is deleted at the end (unless kept).
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

        /// <summary>
        /// Arguments added to a node's command line, by node name (e.g. its <c>--tls-cert</c>, <c>--tls-key</c> and
        /// <c>--tls-ca</c>); none when null or when it returns none.
        /// </summary>
        public Func<string, IEnumerable<string>>? NodeArguments { get; init; }

        /// <summary>How long a node may take to be Up in the cluster.</summary>
        public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(90);
    }

    private readonly Options _options;

    private LocalCluster(Options options, string root)
    {
        _options = options;
        Root = root;
        DatabasePath = Path.Combine(root, "fabric.db");
        Nodes = [.. Enumerable.Range(1, options.Nodes).Select(i => new LocalNode($"{options.NamePrefix}{i}", root, DatabasePath, options))];
    }

    public string Root { get; }
    public string DatabasePath { get; }
    public IReadOnlyList<LocalNode> Nodes { get; }
    public LocalNode this[string name] => Nodes.FirstOrDefault(n => n.Name == name) ?? throw new ArgumentException($"there is no node {name}");
    public IEnumerable<LocalNode> Running => Nodes.Where(n => n.IsRunning);

    /// <summary>Starts every node and returns once each of them sees all of them Up.</summary>
    public static async Task<LocalCluster> StartAsync(Options options, Action<string> progress, CancellationToken cancel)
    {
        if (options.Nodes < 1) throw new ArgumentException("a local cluster needs at least one node");
        var root = options.Root ?? Path.Combine(Path.GetTempPath(), $"fabric-{Guid.NewGuid():N}"[..19]);
        Directory.CreateDirectory(root);
        var cluster = new LocalCluster(options, root);
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
    /// address if that port is still free, else at a new one (<see cref="StartOutcome"/> says which).
    /// </summary>
    public Task<StartOutcome> StartAgainAsync(LocalNode node, CancellationToken cancel) =>
        node.StartAsync([.. Nodes.Where(n => n != node && n.IsReady).Select(n => n.Endpoint)], cancel);

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
            using var gateway = new GatewayClient(node.Gateway, TimeSpan.FromSeconds(10));
            all.AddRange(await GatewayClient.RetryAsync(() => gateway.LocalDevicesAsync(cancel), cancel));
        }
        return all;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes) node.Kill();
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
