using System.Diagnostics;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using Fabric.Core.Protocol;
using Fabric.Node.Chaos;
using Fabric.Node.Cli;
using Fabric.Node.Hosting;
using Fabric.Node.Jobs;
using Spectre.Console;
using TaskStatus = Fabric.Node.Jobs.TaskStatus;

namespace Fabric.Node.Demo;

/// <summary>
/// <c>fabric demo</c>: the whole story on one machine, with nothing to install (the journal is a SQLite file). Three
/// node processes form a cluster; a job whose stages hand buffers from node to node (dma-buf export, import over the
/// data plane) runs across them; one node is SIGKILLed mid-job; the job recovers (its tasks placed again, the results
/// the dead node held recomputed from their lineage) and finishes with every output equal to the host reference; the
/// survivors' device memory is back at zero; the killed node restarts and rejoins; everything shuts down. Returns the
/// process exit code: 0 when every check passed.
/// </summary>
public static class ClusterDemo
{
    private const int Parts = 16;
    private const uint N = 128;

    public static async Task<int> RunAsync(IAnsiConsole console, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var checks = new DemoChecks(console);
        void Say(string text) => console.MarkupLine($"  [grey]{clock.Elapsed.TotalSeconds,5:0.0}s[/] {Markup.Escape(text)}");

        DemoText.Step(console, 1, "Start a cluster of three node processes on this machine (one emulated device each, one SQLite journal)");
        await using var cluster = await LocalCluster.StartAsync(new LocalCluster.Options { Nodes = 3, DeviceMemory = "256MiB" }, Say, cancel);
        using var gateway = new GatewayClient(cluster.Nodes[0].Gateway);
        var nodes = await gateway.NodesAsync(cancel);
        Say($"{nodes.Nodes.Count(n => n.Status == "Up")} members Up: {string.Join(", ", nodes.Nodes.Select(n => $"{n.Node} at {n.Address}"))}");

        DemoText.Step(console, 2, "The devices the cluster sees (every node publishes its devices to all the others)");
        DemoText.ShowDevices(console, await gateway.DevicesAsync(cancel));

        var spec = ChaosJobs.Create("demo", seed: 2026, Parts, N);
        var plan = JobPlan.Of(spec);
        DemoText.Step(console, 3, $"Submit a job of {spec.Tasks.Length} tasks in {plan.Stages.Length} stages, whose stages share buffers between nodes");
        console.MarkupLine($"  [grey]map[/]  {Parts} tasks, each a {N}×{N} matmul and a scale, spread over the nodes");
        console.MarkupLine("  [grey]mix[/]  each part combined with its neighbour's (axpy): the neighbour's buffer is a");
        console.MarkupLine("       dma-buf exported where it was made and imported here; between two nodes its");
        console.MarkupLine("       bytes cross the data plane, device memory to device memory");
        console.MarkupLine("  [grey]fold[/] a tree of adds to one matrix; [grey]sum[/] its total. Both are the outputs.");
        var expected = Task.Run(() => JobReference.Evaluate(spec), cancel);
        var jobId = await gateway.SubmitAsync(spec, cancel);
        Say($"job {jobId} accepted; its progress and results are persisted events in the journal");

        DemoText.Step(console, 4, "Kill a node that runs tasks, mid-job (SIGKILL: no goodbye)");
        var running = await UntilAsync(gateway, jobId, v => v.CompletedTasks >= Parts / 3 || v.Status != nameof(JobStatus.Running), cancel);
        var runNode = cluster.Nodes.FirstOrDefault(n => running.RunNodes.Length > 0 && n.Address == running.RunNodes[^1]);
        var victim = PickVictim(cluster, running, runNode);
        var placed = running.TaskDetails.Where(t => t.Status == nameof(TaskStatus.Placed) && t.Placements[^1].StartsWith(victim.Name + "/", StringComparison.Ordinal)).Select(t => t.Name).ToList();
        var held = running.TaskDetails.Where(t => t.Status == nameof(TaskStatus.Completed) && t.Placements[^1].StartsWith(victim.Name + "/", StringComparison.Ordinal)).Select(t => t.Name).ToList();
        Say($"{running.CompletedTasks}/{running.Tasks} tasks done; the job's own run is on {runNode?.Name ?? "?"}; " +
            $"{victim.Name} runs {Names(placed)} and holds the results of {Names(held)}");
        var pid = victim.ProcessId;
        victim.Kill();
        var killed = Stopwatch.StartNew();
        Say($"SIGKILL {victim.Name} (pid {pid})");
        // Watched through the node of the job's run: its shard is there, so it answers at once, also when the victim was
        // the node that knew where shards live (the coordinator moves only once the victim is removed, ~7 s).
        var survivor = runNode is not null && runNode != victim ? runNode : cluster.Nodes.First(n => n != victim);
        using var watch = new GatewayClient(survivor.Gateway);

        DemoText.Step(console, 5, "Watch the job recover");
        var view = await WatchRecoveryAsync(watch, jobId, victim, killed, Say, cancel);
        var recomputed = view.TaskDetails.Sum(t => t.Recomputations);
        var again = view.TaskDetails.Count(t => t.Placements.Length > 1);
        checks.Check("the job completed", view.Status == nameof(JobStatus.Completed),
            $"{view.Status}: {view.CompletedTasks}/{view.Tasks} tasks, {again} placed more than once, {recomputed} recomputed from their lineage, {view.Runs} run(s)" +
            (view.Error is null ? "" : $" — {view.Error}"));

        DemoText.Step(console, 6, "Check the result against the host (the same job computed here, every element compared)");
        if (view.Status == nameof(JobStatus.Completed))
            foreach (var check in await JobVerifier.VerifyAsync(watch, jobId, spec, cancel, await expected))
                checks.Check($"output {check.Output}", check.Matches,
                    $"{check.Bytes:N0} bytes {(check.Matches ? "equal the host reference" : $"DIFFER from the host reference: {check.Difference}")}");

        DemoText.Step(console, 7, "Check that nothing leaked: every surviving device back at zero");
        var devices = await SettledAsync(cluster, cancel);
        DemoText.ShowDevices(console, devices);
        checks.Check("zero leaked device memory", devices.All(d => d.MemoryUsed == 0 && d.Allocations == 0),
            string.Join(", ", devices.Select(d => $"{d.Id}: {d.MemoryUsed:N0} bytes in {d.Allocations} allocations")));
        checks.Check("no context, export, import or wait left",
            devices.All(d => d.OpenContexts == 0 && d.Exports == 0 && d.Imports == 0 && d.Waiters == 0 && d.QueueDepth == 0),
            string.Join(", ", devices.Select(d => $"{d.Id}: {d.OpenContexts} contexts, {d.Exports} exports, {d.Imports} imports, {d.Waiters} waits")));

        DemoText.Step(console, 8, $"Restart {victim.Name}: a new incarnation at its old address rejoins the cluster (a new member at a new one, if another process took its port)");
        var restart = Stopwatch.StartNew();
        Say((await cluster.RestartAsync(victim, cancel)).Describe());
        var back = await watch.NodesAsync(cancel);
        checks.Check($"{victim.Name} is back", back.Nodes.Count(n => n.Status == "Up" && n.Reachable) == 3,
            $"Up again after {restart.Elapsed.TotalSeconds:0.0} s; members: {string.Join(", ", back.Nodes.Select(n => $"{n.Node} {n.Status}"))}");

        DemoText.Step(console, 9, "Stop the cluster (SIGTERM: each node leaves gracefully)");
        foreach (var node in cluster.Nodes) await node.StopAsync(TimeSpan.FromSeconds(10));
        Say("all three node processes have exited");

        console.MarkupLine(checks.Failures == 0
            ? $"\n[green]Demo finished in {clock.Elapsed.TotalSeconds:0.0} s: the job survived the loss of {victim.Name}, its result matched the host, and no device memory leaked.[/]"
            : $"\n[red]Demo finished with {checks.Failures} failed checks.[/] The nodes' logs were in {cluster.Root}/logs.");
        return checks.Failures == 0 ? 0 : 1;
    }

    private static string Names(IReadOnlyCollection<string> tasks) =>
        tasks.Count == 0 ? "no task" : tasks.Count <= 4 ? string.Join(", ", tasks) : $"{string.Join(", ", tasks.Take(4))} and {tasks.Count - 4} more";

    /// <summary>A node running tasks of the job (or else holding its results), not the node of the job's own run.</summary>
    private static LocalNode PickVictim(LocalCluster cluster, JobView view, LocalNode? runNode)
    {
        int Score(LocalNode node, string status) =>
            view.TaskDetails.Count(t => t.Status == status && t.Placements.Length > 0 && t.Placements[^1].StartsWith(node.Name + "/", StringComparison.Ordinal));
        return cluster.Nodes.Where(n => n != runNode)
            .OrderByDescending(n => Score(n, nameof(TaskStatus.Placed)))
            .ThenByDescending(n => Score(n, nameof(TaskStatus.Completed)))
            .First();
    }

    /// <summary>
    /// Follows the job until it ends and the cluster has removed the victim, saying when the job's run and the registry
    /// learn of the loss (their connections to the victim close and its port refuses: at once), how the job takes it, and
    /// when the split-brain resolver removes the victim from the cluster (seconds: after the failure detector).
    /// </summary>
    private static async Task<JobView> WatchRecoveryAsync(GatewayClient gateway, string jobId, LocalNode victim, Stopwatch killed, Action<string> say,
        CancellationToken cancel)
    {
        var leftRegistry = false;
        var removed = false;
        var noticed = false;
        var lastDone = -1;
        var reported = new HashSet<string>();
        var lastRecomputed = 0;
        var firstAfter = false;
        JobView? ended = null;
        while (true)
        {
            if (!removed)
            {
                var members = await TryAsync(() => gateway.NodesAsync(cancel));
                var member = members?.Nodes.FirstOrDefault(n => n.Address == victim.Address);
                if (!leftRegistry && member is { Reachable: false })
                {
                    leftRegistry = true;
                    say($"{victim.Name} leaves the registry {killed.Elapsed.TotalSeconds:0.0} s after the kill: its port refuses connections, so its process is gone");
                }
                if (members is not null && member is null && (leftRegistry || killed.Elapsed > TimeSpan.FromSeconds(2)))
                {
                    removed = true;
                    say($"the split-brain resolver downs {victim.Name} and it is removed from the cluster ({killed.Elapsed.TotalSeconds:0.0} s)");
                }
            }
            if (ended is null && await TryAsync(() => gateway.JobAsync(jobId, cancel)) is { } view)
            {
                var error = view.TaskDetails.Select(t => t.LastError).FirstOrDefault(e => e is not null && e.Contains(victim.Name, StringComparison.Ordinal));
                if (!noticed && error is not null)
                {
                    noticed = true;
                    say($"the job's run is told: {error}");
                }
                var recomputed = view.TaskDetails.Sum(t => t.Recomputations);
                var moved = view.TaskDetails.Where(t => t.Placements.Length > 1 && reported.Add(t.Name)).Select(t => $"{t.Name} → {t.Placements[^1]}").ToList();
                if (moved.Count > 0)
                    say($"placed again: {string.Join(", ", moved.Take(4))}{(moved.Count > 4 ? $" and {moved.Count - 4} more" : "")}");
                if (recomputed > lastRecomputed)
                {
                    say($"{recomputed} completed task(s) run again: their results were on {victim.Name} (lineage recompute)");
                    lastRecomputed = recomputed;
                }
                if (!firstAfter && (recomputed > 0 || view.TaskDetails.Any(t => t.Placements.Length > 1 && t.Status == nameof(TaskStatus.Completed))))
                {
                    firstAfter = true;
                    say($"first interrupted work completed again {killed.Elapsed.TotalSeconds:0.0} s after the kill");
                }
                if (view.CompletedTasks != lastDone && view.CompletedTasks % 8 == 0 || view.Status != nameof(JobStatus.Running))
                {
                    if (view.CompletedTasks != lastDone) say($"{view.CompletedTasks}/{view.Tasks} tasks done");
                    lastDone = view.CompletedTasks;
                }
                if (view.Status != nameof(JobStatus.Running)) ended = view;
            }
            // The job may end before the cluster has acted on the loss: the membership is followed a little longer.
            if (ended is not null && (removed || killed.Elapsed > TimeSpan.FromSeconds(20))) return ended;
            if (killed.Elapsed > TimeSpan.FromMinutes(2)) throw new TimeoutException($"job {jobId} did not finish within 2 min of the kill");
            await Task.Delay(100, cancel);
        }
    }

    private static async Task<T?> TryAsync<T>(Func<Task<T>> read) where T : class
    {
        try { return await read(); }
        catch (GatewayException) { return null; }
    }

    private static async Task<JobView> UntilAsync(GatewayClient gateway, string jobId, Func<JobView, bool> done, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await TryAsync(() => gateway.JobAsync(jobId, cancel)) is { } view && done(view)) return view;
            if (clock.Elapsed > TimeSpan.FromMinutes(2)) throw new TimeoutException($"job {jobId} made no progress for 2 min");
            await Task.Delay(25, cancel);
        }
    }

    /// <summary>Devices before any work: nothing held (the baseline the chaos invariants compare with).</summary>
    private static readonly IReadOnlyDictionary<string, DeviceInfo> Zero = new Dictionary<string, DeviceInfo>();

    /// <summary>The running nodes' devices, asked until they are all back at zero or ten seconds have passed.</summary>
    private static async Task<IReadOnlyList<DeviceInfo>> SettledAsync(LocalCluster cluster, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var devices = await cluster.DevicesAsync(cancel);
            if (!ChaosInvariants.DevicesAtBaseline(Zero, devices).Any() || clock.Elapsed > TimeSpan.FromSeconds(10)) return devices;
            await Task.Delay(200, cancel);
        }
    }
}
