using System.Diagnostics;
using Fabric.Core.Gateway;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Core.Jobs;
using Fabric.Node.Cli;
using Fabric.Node.Hosting;
using Fabric.Node.Jobs;

namespace Fabric.Node.Bench;

/// <summary>
/// <c>fabric bench jobs</c>: three node processes, on TLS as nodes are by default. After untimed warm-up jobs (<see cref="WarmUpAsync"/>), three wide jobs
/// of many tiny tasks measure jobs' tasks per second (their median) and
/// the time each task costs over running the same command buffer directly on a device; a job of slow tasks measures
/// recovery: from the SIGKILL of a node running tasks to the completion of a task placed again, and (on a new cluster)
/// from the SIGKILL of the job's own node to the first task completed by its recovered run.
/// </summary>
public static class JobsBench
{
    public sealed record Options(bool Quick);

    public static async Task<IReadOnlyList<BenchLine>> RunAsync(Options options, Action<string> progress, CancellationToken cancel)
    {
        var tasks = options.Quick ? 1_000 : 10_000;
        var lines = new List<BenchLine>();
        double taskNodeRecovery, jobNodeRecovery;
        await using (var nodes = await BenchNodes.StartAsync("j", 3, "256MiB", progress, cancel, tls: true))
        {
            progress($"warm-up: wide jobs of {WarmUpTasks:N0} tiny tasks until each node has run one (not timed)");
            await WarmUpAsync(nodes, progress, cancel);
            progress($"wide jobs: {WideRounds} of {tasks:N0} tiny tasks each, one after another");
            var rounds = new List<(double PerSecond, double SecondsPerTask)>();
            for (var i = 0; i < WideRounds; i++) rounds.Add(await WideJobAsync(nodes, tasks, cancel));
            var (perSecond, perTask) = rounds.OrderBy(r => r.PerSecond).ElementAt(WideRounds / 2);
            progress($"median of {string.Join(", ", rounds.Select(r => $"{r.PerSecond:0}"))} tasks/s: {perSecond:0}");
            progress("the same command buffers submitted directly to one device");
            var direct = await DirectAsync(nodes, tasks, cancel);
            lines.Add(new BenchLine("job_tasks_per_s", perSecond, "per_s", Goal: ">= 5000"));
            lines.Add(new BenchLine("job_task_overhead_us", (perTask - direct) * 1e6, "us", direct * 1e6, "direct_submit_us"));
            progress("recovery: SIGKILL of a node running tasks");
            taskNodeRecovery = await RecoveryAsync(nodes, killEntityNode: false, options.Quick ? 768u : 1024u, progress, cancel);
        }
        await using (var nodes = await BenchNodes.StartAsync("j", 3, "256MiB", progress, cancel, tls: true))
        {
            if (!options.Quick)
            {
                progress($"scale: a wide job of {ScaleTasks:N0} tiny tasks on a fresh cluster, the peak memory of its node");
                lines.Add(await ScaleAsync(nodes, ScaleTasks, progress, cancel));
            }
            progress("recovery: SIGKILL of the node hosting the job");
            jobNodeRecovery = await RecoveryAsync(nodes, killEntityNode: true, options.Quick ? 768u : 1024u, progress, cancel);
        }
        lines.Add(new BenchLine("recovery_task_node_s", taskNodeRecovery, "s", Goal: "<= 5"));
        lines.Add(new BenchLine("recovery_job_node_s", jobNodeRecovery, "s", Goal: "<= 10"));
        return lines;
    }

    /// <summary>One input, <paramref name="count"/> independent tasks each scaling it into an output of its own.</summary>
    private static JobSpec WideSpec(int count)
    {
        var job = new JobBuilder($"wide-{count}").RandomInput("x", 16, seed: 3);
        for (var i = 0; i < count; i++)
        {
            var k = i;
            job.Output($"y{k}", 64).Task($"t{k}", t => t.Scale($"y{k}", "x", k));
        }
        return job.Build();
    }

    private const int ScaleTasks = 100_000;

    /// <summary>The wide job runs this many times on one cluster; its figure is their median (the machine is noisy).</summary>
    private const int WideRounds = 3;

    private const int WarmUpTasks = 2_000;

    /// <summary>
    /// Wide jobs, until every node has hosted one's run (at most 8): the node that hosts a job plans it, starts its shard and
    /// recovers its journal, and a process does all of that slowly the first time, its code not yet compiled (tiered JIT).
    /// What is measured after is a cluster in its steady state, as a user's long-running one is.
    /// </summary>
    private static async Task WarmUpAsync(BenchNodes nodes, Action<string> progress, CancellationToken cancel)
    {
        var hosts = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 8 && hosts.Count < nodes.Cluster.Nodes.Count; i++)
        {
            using var gateway = new GatewayClient(nodes.Gateway(i % nodes.Cluster.Nodes.Count));
            var jobId = await gateway.SubmitAsync(WideSpec(WarmUpTasks), cancel);
            var brief = await AwaitAsync(gateway, jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromMinutes(2), cancel, brief: true);
            if (brief.Status != "Completed") throw new InvalidOperationException($"the warm-up job {brief.Status}: {brief.Error}");
            hosts.UnionWith(brief.RunNodes);
        }
        progress($"warm: {hosts.Count} of {nodes.Cluster.Nodes.Count} nodes have hosted a job");
    }

    /// <summary>
    /// A wide job of <paramref name="count"/> tiny tasks → the peak resident memory of the node that ran it (Linux's
    /// VmHWM, reset on every node just before the submission), with that node's resident memory before as the baseline.
    /// </summary>
    private static async Task<BenchLine> ScaleAsync(BenchNodes nodes, int count, Action<string> progress, CancellationToken cancel)
    {
        var spec = WideSpec(count);
        int Pid(LocalNode node) => node.ProcessId ?? throw new InvalidOperationException($"node {node.Name} is not running");
        var before = nodes.Cluster.Nodes.ToDictionary(n => n.Name, n => ResidentMemory.ResetPeak(Pid(n)));
        using var gateway = new GatewayClient(nodes.Gateway(0));
        var clock = Stopwatch.StartNew();
        var jobId = await gateway.SubmitAsync(spec, cancel);
        var brief = await AwaitAsync(gateway, jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromMinutes(10), cancel, brief: true);
        var seconds = clock.Elapsed.TotalSeconds;
        if (brief.Status != "Completed") throw new InvalidOperationException($"the {count:N0}-task job {brief.Status}: {brief.Error}");
        var jobNode = (await gateway.NodesAsync(cancel)).Nodes.Single(m => m.Address == brief.RunNodes[^1]).Node;
        var peaks = nodes.Cluster.Nodes.ToDictionary(n => n.Name, n => ResidentMemory.Peak(Pid(n)));
        progress($"{count:N0} tasks in {seconds:0.0} s ({count / seconds:0} tasks/s); peak resident memory: " +
                 string.Join(", ", peaks.Select(p => $"{p.Key} {p.Value:0} MiB (from {before[p.Key]:0}){(p.Key == jobNode ? ", the job's node" : "")}")));
        return new BenchLine("job_100k_peak_rss_MiB", peaks[jobNode], "MiB", before[jobNode], "job_node_rss_before_MiB");
    }

    private static async Task<(double PerSecond, double SecondsPerTask)> WideJobAsync(BenchNodes nodes, int count, CancellationToken cancel)
    {
        var spec = WideSpec(count);
        using var gateway = new GatewayClient(nodes.Gateway(0));
        var clock = Stopwatch.StartNew();
        var jobId = await gateway.SubmitAsync(spec, cancel);
        var submitted = clock.Elapsed.TotalSeconds;
        // Polled as a user's watcher polls (fabric run --wait): brief views, without the 10 000 tasks' records.
        await AwaitAsync(gateway, jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromMinutes(4), cancel, brief: true);
        var seconds = clock.Elapsed.TotalSeconds;
        var view = await gateway.JobAsync(jobId, cancel);
        var own = view.FinishedAt - view.SubmittedAt;
        Console.Error.WriteLine($"  {count} tasks in {seconds:0.0} s (the submission answered after {submitted:0.00} s; the job's own journal: submitted " +
                                $"to finished in {own?.TotalSeconds:0.00} s{Phases(view)})");
        if (view.Status != "Completed") throw new InvalidOperationException($"the wide job {view.Status}: {view.Error}");
        return (count / seconds, seconds / count);
    }

    /// <summary>Where the job's own time went, from its journal: to the first placement, placements to the last task's end, then to its end.</summary>
    private static string Phases(JobView view)
    {
        var attempts = view.TaskDetails.Where(t => !t.AttemptLog.IsDefaultOrEmpty).SelectMany(t => t.AttemptLog).ToList();
        if (attempts.Count == 0 || view.SubmittedAt is not { } submitted || view.FinishedAt is not { } finished) return "";
        var first = attempts.Min(a => a.StartedAt);
        var last = attempts.Max(a => a.EndedAt ?? a.StartedAt);
        return $": {(first - submitted).TotalSeconds:0.00} s to the first placement, {(last - first).TotalSeconds:0.00} s running tasks, " +
               $"{(finished - last).TotalSeconds:0.00} s after the last";
    }

    /// <summary>Seconds per submission of the same tiny command buffer, submitted and waited on one at a time.</summary>
    private static async Task<double> DirectAsync(BenchNodes nodes, int count, CancellationToken cancel)
    {
        await using var context = await nodes.Client.OpenAsync(new DeviceId(nodes.Names[0], 0), cancel);
        var space = await context.CreateAddressSpaceAsync(cancel);
        await context.AttachAsync(space, cancel);
        var buffer = await context.AllocateAsync(4096, cancel: cancel);
        var iova = await context.MapAsync(space, buffer, Access.ReadWrite, cancel: cancel);
        var command = new CommandBufferBuilder().Scale(iova + 1024, iova, 16, 2f).Build();
        var rounds = Math.Min(count, 2_000);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < rounds; i++) await context.RunAsync(command, TimeSpan.FromSeconds(10), cancel: cancel);
        return clock.Elapsed.TotalSeconds / rounds;
    }

    /// <summary>
    /// Six independent tasks of four chained n×n matmuls each (long enough to be running when the node dies). Returns
    /// the seconds from the SIGKILL to the completion of a task that had to run again.
    /// </summary>
    private static async Task<double> RecoveryAsync(BenchNodes nodes, bool killEntityNode, uint n, Action<string> progress, CancellationToken cancel)
    {
        var size = (long)n * n * 4;
        var job = new JobBuilder(killEntityNode ? "recover-job-node" : "recover-task-node")
            .RandomInput("a", (long)n * n, seed: 5).RandomInput("b", (long)n * n, seed: 6, scale: 0.01f);
        for (var i = 0; i < 6; i++)
        {
            var k = i;
            job.Buffer($"p{k}", size).Buffer($"q{k}", size).Buffer($"r{k}", size).Output($"s{k}", size)
                .Task($"mul{k}", t => t.MatMul($"p{k}", "a", "b", n, n, n).MatMul($"q{k}", $"p{k}", "b", n, n, n)
                    .MatMul($"r{k}", $"q{k}", "b", n, n, n).MatMul($"s{k}", $"r{k}", "b", n, n, n));
        }
        var spec = job.Build();
        using var first = new GatewayClient(nodes.Gateway(0));
        var jobId = await first.SubmitAsync(spec, cancel);
        var entityNode = "";
        var running = await AwaitAsync(first, jobId, v => v.RunNodes.Length > 0 && v.TaskDetails.Count(t => t.Status == "Placed") >= 3, TimeSpan.FromMinutes(1), cancel);
        entityNode = (await first.NodesAsync(cancel)).Nodes.Single(m => m.Address == running.RunNodes[^1]).Node;
        var victim = killEntityNode
            ? entityNode
            : running.TaskDetails.Where(t => t.Status == "Placed").Select(t => t.Placements[^1].Split('/')[0]).FirstOrDefault(node => node != entityNode)
              ?? throw new InvalidOperationException("no task ran outside the job's node");
        using var gateway = new GatewayClient(nodes.Cluster.Nodes.First(n => n.Name != victim).Gateway);
        static int Done(JobView v) => v.TaskDetails.Sum(t => t.Completions + t.Recomputations);
        var doneBefore = Done(running);
        var runsBefore = running.Runs;

        nodes.Cluster[victim].Kill();
        var clock = Stopwatch.StartNew();
        var killedAt = DateTimeOffset.UtcNow;
        progress($"killed {victim} ({(killEntityNode ? "the job's node" : $"runs tasks; the job is on {entityNode}")})");
        var after = await AwaitAsync(gateway, jobId, v => killEntityNode
            ? v.Runs > runsBefore && Done(v) > doneBefore
            : v.TaskDetails.Any(t => t.Status == "Completed" && t.Placements.Length > 1 &&
                                     t.Placements[..^1].Any(p => p.StartsWith(victim + "/", StringComparison.Ordinal))) || v.Status is "Completed" or "Failed",
            TimeSpan.FromMinutes(2), cancel);
        var seconds = clock.Elapsed.TotalSeconds;
        if (!killEntityNode && !after.TaskDetails.Any(t => t.Placements.Length > 1))
            throw new InvalidOperationException($"the tasks on {victim} finished before the kill: nothing had to recover");
        progress($"a task completed again {seconds:0.0} s after the kill{(killEntityNode ? RecoveredRun(after, killedAt) : PlacedAgain(after, victim, killedAt))}");
        var end = await AwaitAsync(gateway, jobId, v => v.Status is "Completed" or "Failed", TimeSpan.FromMinutes(2), cancel);
        if (end.Status != "Completed") throw new InvalidOperationException($"the job {end.Status} after the kill: {end.Error}");
        return seconds;
    }

    /// <summary>Where a job node's recovery spent its time: when the new run started (the lost run's attempts end then) and placed its first task.</summary>
    private static string RecoveredRun(JobView view, DateTimeOffset killedAt)
    {
        var attempts = view.TaskDetails.SelectMany(t => t.AttemptLog.IsDefault ? [] : t.AttemptLog).ToList();
        if (attempts.Where(a => a.Outcome == "RunLost").Select(a => a.EndedAt).Max() is not { } started) return "";
        var placed = attempts.Where(a => a.StartedAt >= started).Select(a => (DateTimeOffset?)a.StartedAt).Min();
        return $" (the new run started {(started - killedAt).TotalSeconds:0.0} s after it" +
               (placed is { } p ? $", placed its first task at {(p - killedAt).TotalSeconds:0.0} s)" : ")");
    }

    /// <summary>Where a task node's recovery spent its time: when the victim's attempts ended, and the first attempt placed again ran.</summary>
    private static string PlacedAgain(JobView view, string victim, DateTimeOffset killedAt)
    {
        var again = view.TaskDetails.Where(t => t.Placements.Length > 1 && t.Placements[..^1].Any(p => p.StartsWith(victim + "/", StringComparison.Ordinal)))
            .SelectMany(t => t.AttemptLog.IsDefault ? [] : t.AttemptLog).ToList();
        var lost = again.Where(a => a.Node == victim && a.EndedAt is not null).Select(a => a.EndedAt!.Value).DefaultIfEmpty().Min();
        var next = again.Where(a => a.Node != victim && a.Outcome == "Completed").OrderBy(a => a.EndedAt).FirstOrDefault();
        if (next is null) return "";
        return $" (its attempts on {victim} ended at {(lost - killedAt).TotalSeconds:0.0} s; the next ran on {next.Device} from " +
               $"{(next.StartedAt - killedAt).TotalSeconds:0.0} s to {(next.EndedAt!.Value - killedAt).TotalSeconds:0.0} s)";
    }

    private static async Task<JobView> AwaitAsync(GatewayClient gateway, string jobId, Func<JobView, bool> until, TimeSpan timeout, CancellationToken cancel,
        bool brief = false)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var view = brief ? await gateway.JobBriefAsync(jobId, cancel) : await gateway.JobAsync(jobId, cancel);
                if (until(view)) return view;
            }
            catch (GatewayException) when (clock.Elapsed < timeout) { }
            if (clock.Elapsed > timeout) throw new TimeoutException($"job {jobId} did not get there within {timeout.TotalSeconds:0} s");
            await Task.Delay(50, cancel);
        }
    }
}
