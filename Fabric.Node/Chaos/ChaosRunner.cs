using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using Fabric.Core.Client;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using Fabric.Core.Protocol;
using Fabric.Node.Cli;
using Fabric.Node.Hosting;
using Fabric.Node.Jobs;

namespace Fabric.Node.Chaos;

/// <summary>
/// <c>fabric chaos</c>: starts a <see cref="LocalCluster"/>, runs the seeded <see cref="ChaosPlan"/> — each wave of
/// jobs submitted, then its fault struck once the wave's first job is far enough along, the victims brought back and
/// the cluster whole again before the next wave — waits for every job, then checks <see cref="ChaosInvariants"/>
/// against the jobs' results, the devices of every node and the journal, and reports.
/// </summary>
public sealed class ChaosRunner(ChaosOptions options, IChaosView view)
{
    private readonly ChaosPlan _plan = ChaosPlan.Create(options);
    private readonly Stopwatch _clock = new();
    private readonly ConcurrentDictionary<string, JobView> _views = new();
    private readonly ConcurrentDictionary<string, bool> _submitted = new();
    private readonly Dictionary<string, Task<ImmutableDictionary<string, byte[]>>> _references = [];
    private readonly List<Violation> _violations = [];
    private readonly List<(ChaosFault Fault, IReadOnlyList<string> Addresses, long AtMs, double AtSeconds, double DownSeconds, double HealedSeconds, string Job, double Progress,
        IReadOnlyList<string>? Kept)> _struck = [];
    private LocalCluster? _cluster;
    private ChaosPartitions? _partitions;
    private int _nextGateway;

    public async Task<ChaosReport> RunAsync(CancellationToken cancel)
    {
        _clock.Start();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(options.Timeout);
        view.Event($"seed {options.Seed}: {_plan.Nodes.Length} nodes, {_plan.Faults.Length} faults " +
                   $"({string.Join(", ", _plan.Faults.Select(f => $"{f.Kind.ToString().ToLowerInvariant()} {string.Join('+', f.Victims)}"))}), {_plan.Jobs.Length} jobs in {_plan.Waves} waves");
        foreach (var job in _plan.Jobs) _references[job.Id] = Task.Run(() => JobReference.Evaluate(job.Spec), CancellationToken.None);

        var devices = Array.Empty<DeviceRecord>();
        await using (_cluster = await LocalCluster.StartAsync(new LocalCluster.Options
                     {
                         Nodes = options.Nodes,
                         DeviceMemory = options.DeviceMemory,
                         KeepFiles = options.KeepFiles,
                         Namespaces = options.Namespaces,
                         NetworkSeed = options.Seed,
                     }, view.Event, deadline.Token))
        {
            _partitions = options.Namespaces ? new ChaosPartitions(_cluster) : null;
            view.Event($"cluster up: {string.Join(", ", _cluster.Nodes.Select(n => n.Name))} (files in {_cluster.Root})");
            var baseline = (await _cluster!.DevicesAsync(deadline.Token)).ToDictionary(d => d.Id.ToString());
            using var watcher = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
            var watching = WatchAsync(watcher.Token);
            try
            {
                for (var wave = 0; wave < _plan.Waves; wave++)
                {
                    await Task.WhenAll(_plan.Wave(wave).Select(async job =>
                    {
                        try { await SubmitAsync(job, deadline.Token); }
                        catch (GatewayException e) { Violate(new Violation(ChaosInvariants.Completed, job.Id, $"could not be submitted: {e.Message}")); }
                    }));
                    if (wave < _plan.Faults.Length) await StrikeAsync(_plan.Faults[wave], deadline.Token);
                    await CheckEndedJobsAsync(deadline.Token);
                }
                await AwaitJobsAsync(deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancel.IsCancellationRequested)
            {
                Violate(new Violation(ChaosInvariants.Completed, "run", $"the run did not finish within {options.Timeout.TotalMinutes:0.#} min (--timeout)"));
            }
            finally
            {
                await watcher.CancelAsync();
                await watching;
            }
            cancel.ThrowIfCancellationRequested();
            using var checks = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            devices = await CheckAsync(baseline, checks.Token);
        }
        foreach (var gateway in _gateways.Values) gateway.Dispose();
        var report = Report(devices);
        if (options.ReportPath is { } path) await File.WriteAllTextAsync(path, report.ToJson(), CancellationToken.None);
        return report;
    }

    // ---- the run -------------------------------------------------------------------------------------------------

    private readonly ConcurrentDictionary<string, GatewayClient> _gateways = new();

    /// <summary>The gateway of a running node, round robin (one HTTP client per gateway, kept for the run).</summary>
    private GatewayClient Gateway()
    {
        var unreachable = _partitions?.Unreachable ?? [];
        var running = _cluster!.Running.Where(n => n.IsReady && !unreachable.Contains(n.Name)).ToList();
        if (running.Count == 0) throw new InvalidOperationException("no node is running");
        var node = running[Interlocked.Increment(ref _nextGateway) % running.Count];
        // A job request answers within its own bounds (5 s for reads, 30 s for a submission) or says why: wait that long.
        // A node started again has a gateway on a new port: one client per gateway.
        return _gateways.GetOrAdd(node.Gateway, _ => node.GatewayClient(TimeSpan.FromSeconds(40)));
    }

    /// <summary>Submits under the job's own id, retrying on another node while the answer is lost (a retry starts nothing twice).</summary>
    private async Task SubmitAsync(ChaosJob job, CancellationToken cancel)
    {
        await GatewayClient.RetryAsync(() => Gateway().SubmitAsync(job.Spec, cancel, job.Id), cancel, attempts: 30);
        _submitted[job.Id] = true;
        view.Event($"submitted {job.Id} ({job.Spec.Tasks.Length} tasks)");
    }

    private async Task StrikeAsync(ChaosFault fault, CancellationToken cancel)
    {
        var target = _plan.Wave(fault.Wave).First();
        var progress = await AwaitProgressAsync(target.Id, fault.AtProgress, cancel);
        var victims = fault.Victims.Select(name => _cluster![name]).ToList();
        var addresses = victims.Select(v => v.Address).ToList(); // a restart may move a victim to a new address
        var processes = _cluster!.Nodes.ToDictionary(n => n.Name, n => n.ProcessId);
        var what = fault.Kind switch
        {
            FaultKind.Kill => "SIGKILL",
            FaultKind.Freeze => "SIGSTOP",
            _ => ChaosPartitions.Describe(fault, _plan.Nodes) + ":",
        };
        var faultClock = Stopwatch.StartNew();
        if (fault.IsPartition) await _partitions!.StrikeAsync(fault, cancel);
        else
            foreach (var victim in victims)
            {
                if (fault.Kind == FaultKind.Kill) victim.Kill();
                else victim.Freeze();
            }
        // The fault's time is taken once the victims are dead (or stopped): nothing they stamp comes after it.
        var atMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var atSeconds = _clock.Elapsed.TotalSeconds;
        view.Event($"fault {fault.Number}/{_plan.Faults.Length}: {what} {string.Join(", ", fault.Victims)} with {target.Id} at {progress:P0}");
        await Task.Delay(fault.Down, cancel);
        var down = faultClock.Elapsed.TotalSeconds;
        if (fault.IsPartition)
        {
            view.Event($"healing the links after {down:0.0} s; gone meanwhile: {Gone(processes)}");
            await _partitions!.HealAsync(cancel);
        }
        else
            foreach (var victim in victims)
            {
                if (fault.Kind == FaultKind.Kill)
                {
                    view.Event($"restarting {victim.Name} after {down:0.0} s down");
                    await StartAgainAsync(victim, cancel);
                }
                else
                {
                    view.Event($"SIGCONT {victim.Name} after {down:0.0} s frozen");
                    victim.Thaw();
                }
            }
        // After a partition any node may be the one downed, and must come back.
        await HealAsync(fault.IsPartition ? _cluster.Nodes : victims, cancel, newPort: fault.IsPartition);
        var healed = faultClock.Elapsed.TotalSeconds;
        view.Event($"cluster whole again {healed:0.0} s after fault {fault.Number}");
        IReadOnlyList<string>? kept = null;
        if (fault.IsPartition)
        {
            // Kept: the nodes whose process of before the fault is still running (and so, after the heal, Up): the
            // others were downed (their process ended) or stuck outside the cluster until restarted.
            kept = [.. _cluster.Nodes.Where(n => n.ProcessId is { } pid && processes[n.Name] == pid).Select(n => n.Name)];
            view.Event($"partition {fault.Number}: the resolver kept {(kept.Count == 0 ? "nobody" : string.Join(", ", kept))}, " +
                       $"downed {string.Join(", ", _plan.Nodes.Except(kept))}; whole {healed - down:0.0} s after the heal");
            foreach (var v in ChaosInvariants.KeptOneSide(fault, _plan.Nodes, kept)) Violate(v);
        }
        _struck.Add((fault, addresses, atMs, atSeconds, down, healed, target.Id, progress, kept));
    }

    /// <summary>The nodes whose process of <paramref name="before"/> has ended, for the log.</summary>
    private string Gone(IReadOnlyDictionary<string, int?> before)
    {
        var gone = _cluster!.Nodes.Where(n => n.ProcessId is not { } pid || before[n.Name] != pid).Select(n => n.Name).ToList();
        return gone.Count == 0 ? "none" : string.Join(", ", gone);
    }

    /// <summary>
    /// Waits until every node is Up and sees all of them. A thawed node the cluster downed meanwhile (its process ends,
    /// or it never comes back Up) is started again, as an operator would. After a partition a downed node comes back
    /// at a new port, a new member: at its old address the survivors' connections to it, half-open since the links
    /// were cut, can outlive the heal by seconds, and Akka's classic remoting then loses the newcomer's association
    /// (it is marked unreachable and downed again; seen here in 3-node runs).
    /// </summary>
    private async Task HealAsync(IReadOnlyList<LocalNode> victims, CancellationToken cancel, bool newPort = false)
    {
        foreach (var node in _cluster!.Nodes)
        {
            using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            patience.CancelAfter(TimeSpan.FromSeconds(45));
            try
            {
                if (node.ExitCode is not null) view.Event((await _cluster.StartAgainAsync(node, patience.Token, newPort)).Describe());
                await _cluster.AwaitUpAsync(node, patience.Token);
            }
            catch (Exception e) when (victims.Contains(node) && !cancel.IsCancellationRequested && e is OperationCanceledException or InvalidOperationException or TimeoutException)
            {
                view.Event($"{node.Name} did not rejoin ({Why(e)}): killing and starting it again");
                await RestartAsync(node, cancel);
            }
        }
    }

    /// <summary>
    /// Starts a node that did not rejoin again, on a new port (a new member, which no stale association of its old
    /// address can reach), up to three times.
    /// </summary>
    private async Task RestartAsync(LocalNode node, CancellationToken cancel)
    {
        for (var attempt = 1; ; attempt++)
        {
            node.Kill();
            using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            patience.CancelAfter(TimeSpan.FromSeconds(45));
            try
            {
                view.Event((await _cluster!.StartAgainAsync(node, patience.Token, newPort: true)).Describe());
                await _cluster.AwaitUpAsync(node, patience.Token);
                return;
            }
            catch (Exception e) when (attempt < 3 && !cancel.IsCancellationRequested && e is OperationCanceledException or InvalidOperationException or TimeoutException)
            {
                view.Event($"{node.Name} did not rejoin after restart {attempt} ({Why(e)}): once more");
            }
        }
    }

    /// <summary>Starts a killed victim again (at its old address if that port is free) and says where it came back.</summary>
    private async Task StartAgainAsync(LocalNode victim, CancellationToken cancel)
    {
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        patience.CancelAfter(TimeSpan.FromSeconds(45));
        try
        {
            view.Event((await _cluster!.StartAgainAsync(victim, patience.Token)).Describe());
        }
        catch (Exception e) when (!cancel.IsCancellationRequested && e is OperationCanceledException or InvalidOperationException or TimeoutException)
        {
            view.Event($"{victim.Name} did not come back ({Why(e)}): killing and starting it again");
            victim.Kill();
            view.Event((await _cluster!.StartAgainAsync(victim, cancel)).Describe());
        }
    }

    private static string Why(Exception e) => e is OperationCanceledException ? "not Up within 45 s" : e.Message.Split('\n')[0];

    /// <summary>Waits until job <paramref name="jobId"/> has completed the given share of its tasks (or has ended) → the share.</summary>
    private async Task<double> AwaitProgressAsync(string jobId, double share, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        JobView? job = null;
        var gateway = Gateway();
        while (true)
        {
            try { job = await gateway.JobAsync(jobId, cancel); }
            catch (GatewayException) { }
            if (job is { Tasks: > 0 })
            {
                var done = (double)job.CompletedTasks / job.Tasks;
                if (done >= share || job.Status is nameof(JobStatus.Completed) or nameof(JobStatus.Failed)) return done;
            }
            if (clock.Elapsed > TimeSpan.FromMinutes(2))
            {
                Violate(new Violation(ChaosInvariants.Completed, jobId, $"did not reach {share:P0} of its tasks within 2 min: it hangs (the fault strikes anyway)"));
                return job is { Tasks: > 0 } ? (double)job.CompletedTasks / job.Tasks : 0;
            }
            await Task.Delay(20, cancel);
        }
    }

    /// <summary>Keeps <see cref="_views"/> fresh (each job not yet ended, every 100 ms) and the live status up to date.</summary>
    private async Task WatchAsync(CancellationToken cancel)
    {
        while (!cancel.IsCancellationRequested)
        {
            foreach (var job in _plan.Jobs)
            {
                if (_views.TryGetValue(job.Id, out var known) && known.Status is nameof(JobStatus.Completed) or nameof(JobStatus.Failed)) continue;
                if (!_submitted.ContainsKey(job.Id)) continue;
                try
                {
                    var gateway = Gateway();
                    var seen = await gateway.JobAsync(job.Id, cancel);
                    if (_views.TryGetValue(job.Id, out var before) && before.Status != seen.Status)
                        view.Event($"{job.Id} {seen.Status.ToLowerInvariant()} ({seen.CompletedTasks}/{seen.Tasks} tasks, {seen.Runs} run(s), " +
                                   $"{seen.TaskDetails.Sum(t => t.Recomputations)} recomputed)");
                    _views[job.Id] = seen;
                }
                catch (OperationCanceledException) when (cancel.IsCancellationRequested) { return; }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The watch goes on whatever one answer did: the run's end waits on what it sees.
                    if (e is not (GatewayException or InvalidOperationException)) view.Event($"watching {job.Id}: {e.Message}");
                }
            }
            try
            {
                view.Status(Status());
                await Task.Delay(100, cancel);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested) { return; }
        }
    }

    private ChaosStatus Status() => new(
        _clock.Elapsed,
        [.. _cluster!.Nodes.Select(n => (n.Name, n.IsFrozen ? "frozen" : n.IsRunning ? "up" : "down"))],
        _plan.Jobs.Length,
        _views.Values.Count(v => v.Status == nameof(JobStatus.Completed)),
        _views.Values.Count(v => v.Status == nameof(JobStatus.Running)),
        _views.Values.Count(v => v.Status == nameof(JobStatus.Failed)),
        _views.Values.Sum(v => v.CompletedTasks),
        _views.Values.Sum(v => v.Tasks),
        _struck.Count,
        _plan.Faults.Length,
        _violations.Count);

    private async Task AwaitJobsAsync(CancellationToken cancel)
    {
        view.Event("every fault struck; waiting for the jobs to end");
        while (_plan.Jobs.Any(j => _submitted.ContainsKey(j.Id) && (!_views.TryGetValue(j.Id, out var v) || v.Status is not (nameof(JobStatus.Completed) or nameof(JobStatus.Failed)))))
            await Task.Delay(100, cancel);
    }

    // ---- the checks ----------------------------------------------------------------------------------------------

    /// <summary>
    /// Checks each job that has ended since the last call, as the run goes: it completed, its outputs equal the host
    /// reference, its journal is consistent. A violation is shown the moment it is found.
    /// </summary>
    private async Task CheckEndedJobsAsync(CancellationToken cancel)
    {
        var ended = _plan.Jobs.Where(j => !_checked.Contains(j.Id) && _views.TryGetValue(j.Id, out var v) &&
                                          v.Status is nameof(JobStatus.Completed) or nameof(JobStatus.Failed)).ToList();
        if (ended.Count == 0) return;
        var histories = await ChaosJournal.ReadJobsAsync(_cluster!.DatabasePath, Decoder, cancel);
        foreach (var job in ended)
        {
            _checked.Add(job.Id);
            var seen = _views[job.Id];
            foreach (var v in ChaosInvariants.JobsCompleted([job], _views)) Violate(v);
            if (seen.Status == nameof(JobStatus.Completed))
            {
                var expected = await _references[job.Id];
                var checks = await GatewayClient.RetryAsync(() => JobVerifier.VerifyAsync(Gateway(), job.Id, job.Spec, cancel, expected), cancel);
                _verified[job.Id] = checks.All(c => c.Matches);
                foreach (var bad in checks.Where(c => !c.Matches))
                    Violate(new Violation(ChaosInvariants.CorrectResult, job.Id, $"output {bad.Output} ({bad.Bytes:N0} bytes) differs from the host reference"));
            }
            if (histories.TryGetValue(job.Id, out var history))
            {
                foreach (var v in ChaosInvariants.JournalConsistent(job, history, seen)) Violate(v);
                foreach (var v in ChaosInvariants.StateEqualsJournal(job.Id, history, seen)) Violate(v);
            }
            else
                Violate(new Violation(ChaosInvariants.Journal, job.Id, "the journal holds no event of the job"));
        }
    }

    private void Violate(Violation violation)
    {
        lock (_violations) _violations.Add(violation);
        view.Event($"✗ {violation.Invariant}: {violation.Subject}: {violation.Detail}");
    }

    private readonly HashSet<string> _checked = [];
    private Akka.Actor.ActorSystem? _decoder;

    /// <summary>An ActorSystem of this process, only to decode journal rows with the Fabric serializer.</summary>
    private Akka.Actor.ActorSystem Decoder => _decoder ??= FabricClientSystem.Create(name: "fabric-chaos");

    /// <summary>At the end: the jobs not checked yet, every device against its baseline, the job index and every journal.</summary>
    private async Task<DeviceRecord[]> CheckAsync(IReadOnlyDictionary<string, DeviceInfo> baseline, CancellationToken cancel)
    {
        view.Event("checking the last jobs against the host reference and the journal");
        await CheckEndedJobsAsync(cancel);
        foreach (var v in ChaosInvariants.JobsCompleted(_plan.Jobs.Where(j => !_checked.Contains(j.Id)), _views)) Violate(v);

        view.Event("checking every device is back at its baseline");
        var devices = await SettledDevicesAsync(baseline, cancel);
        foreach (var v in ChaosInvariants.DevicesAtBaseline(baseline, devices)) Violate(v);

        view.Event("checking that every job ran exactly once (job index and journal)");
        var histories = await ChaosJournal.ReadJobsAsync(_cluster!.DatabasePath, Decoder, cancel);
        await Decoder.Terminate();
        IReadOnlyList<string> indexed = [.. (await GatewayClient.RetryAsync(() => Gateway().JobsAsync(cancel), cancel)).Select(v => v.JobId)];
        foreach (var v in ChaosInvariants.RanExactlyOnce(_plan.Jobs, indexed, histories)) Violate(v);
        _histories = histories;

        // Asked again now, most ended jobs have passivated and recover from their snapshot and journal to answer.
        view.Event("checking every job's state, recovered again, against its journal");
        foreach (var job in _plan.Jobs.Where(j => histories.ContainsKey(j.Id)))
        {
            var again = await GatewayClient.RetryAsync(() => Gateway().JobAsync(job.Id, cancel), cancel);
            foreach (var v in ChaosInvariants.StateEqualsJournal(job.Id, histories[job.Id], again)) Violate(v);
        }

        return [.. devices.Select(d => new DeviceRecord(d.Id.ToString(), d.MemoryUsed, d.Allocations, d.OpenContexts, d.Exports, d.Imports, d.Waiters,
            d.QueueDepth, AtBaseline: !ChaosInvariants.DevicesAtBaseline(baseline, [d]).Any()))];
    }

    private readonly Dictionary<string, bool> _verified = [];
    private ImmutableDictionary<string, ImmutableArray<JournalEntry>> _histories = ImmutableDictionary<string, ImmutableArray<JournalEntry>>.Empty;

    /// <summary>
    /// Every running node's devices, asked until they are at baseline (a job's contexts close as its client session
    /// ends, a moment after the job) or 30 s have passed: then as they are.
    /// </summary>
    private async Task<IReadOnlyList<DeviceInfo>> SettledDevicesAsync(IReadOnlyDictionary<string, DeviceInfo> baseline, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var devices = await _cluster!.DevicesAsync(cancel);
            if (!ChaosInvariants.DevicesAtBaseline(baseline, devices).Any() || clock.Elapsed > TimeSpan.FromSeconds(30)) return devices;
            await Task.Delay(250, cancel);
        }
    }

    private ChaosReport Report(DeviceRecord[] devices)
    {
        var faults = _struck.Select(s =>
        {
            var victims = s.Fault.Victims;
            var outcome = ChaosRecovery.Of(victims, [.. s.Addresses], s.AtMs, _histories);
            return new FaultRecord(s.Fault.Number, s.Fault.Kind.ToString().ToLowerInvariant(), [.. victims], s.Job, Math.Round(s.Progress, 2),
                Math.Round(s.AtSeconds, 1), Math.Round(s.DownSeconds, 1), Math.Round(s.HealedSeconds, 1), outcome.Role, outcome.InterruptedTasks,
                outcome.RecoverySeconds is { } r ? Math.Round(r, 3) : null, outcome.RecoveredBy,
                s.Kept is { } kept ? [.. kept] : null, s.Kept is { } k ? [.. _plan.Nodes.Except(k)] : null);
        }).ToArray();
        var jobs = _plan.Jobs.Select(j =>
        {
            var v = _views.GetValueOrDefault(j.Id);
            double? seconds = v is { SubmittedAt: { } from, FinishedAt: { } to } ? Math.Round((to - from).TotalSeconds, 2) : null;
            return new JobRecord(j.Id, j.Wave + 1, v?.Status ?? "Unknown", j.Spec.Tasks.Length, v?.Runs ?? 0,
                v?.TaskDetails.Sum(t => Math.Max(0, t.Attempts - t.Completions - t.Recomputations)) ?? 0, v?.TaskDetails.Sum(t => t.Recomputations) ?? 0,
                _verified.TryGetValue(j.Id, out var ok) ? ok : null, seconds);
        }).ToArray();
        var replay = $"fabric chaos --seed {options.Seed} --nodes {options.Nodes} --kills {options.Kills}" +
                     (options.Freeze ? " --freeze" : "") + (options.Namespaces ? " --netns" : "") + (options.Partitions ? " --partitions" : "") +
                     (options.JobsPerWave != 2 ? $" --jobs-per-wave {options.JobsPerWave}" : "");
        return new ChaosReport(options.Seed, options.Nodes, _struck.Count(s => s.Fault.Kind == FaultKind.Kill),
            _struck.Count(s => s.Fault.Kind == FaultKind.Freeze), Math.Round(_clock.Elapsed.TotalSeconds, 1), faults, jobs, devices,
            [.. ChaosInvariants.For(options.Partitions)], [.. _violations], replay, _struck.Count(s => s.Fault.IsPartition));
    }
}
