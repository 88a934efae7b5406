using System.CommandLine;
using Fabric.Node.Chaos;
using Spectre.Console;

namespace Fabric.Node.Cli;

/// <summary><c>fabric chaos</c>: kills nodes under a stream of jobs and proves nothing was lost.</summary>
public static class ChaosCommand
{
    public static Command Build()
    {
        var seed = new Option<int?>("--seed") { Description = "Seeds the jobs and the fault schedule; the same seed replays the same run. Default: a random seed (printed)." };
        var nodes = new Option<int>("--nodes") { Description = $"Node processes to start on 127.0.0.1, or each on a host of its own with --netns (3 to {ChaosOptions.MaxNodes}).", DefaultValueFactory = _ => 3 };
        var kills = new Option<int>("--kills") { Description = "Kill faults, one at a time, each mid-job: SIGKILL of a node (on 5+ nodes sometimes two at once, never a majority), restarted a few seconds later.", DefaultValueFactory = _ => 3 };
        var freeze = new Option<bool>("--freeze") { Description = "Also freeze one node with SIGSTOP for about 4 s, then SIGCONT, as a partition would (Linux)." };
        var netns = new Option<bool>("--netns") { Description = "Runs each node in a network namespace of its own, with its own address on a bridge the run creates in a free private 10.x.y.0/24 (Linux, root, iproute2); all of it is removed at the end, and what a killed run left behind by the next run." };
        var partitions = new Option<bool>("--partitions") { Description = "With --netns: the faults of --kills are drawn among kills and real link faults — a node's link cut, the cluster split into a minority and a majority, one node's packets to another dropped (one way) — each held about 10–13 s, so the split-brain resolver decides, then healed. Checks that the resolver kept exactly one side and the other came back." };
        var perWave = new Option<int>("--jobs-per-wave") { Description = "Jobs submitted before each fault (one more wave runs after the last).", DefaultValueFactory = _ => 2 };
        var memory = new Option<string>("--device-memory") { Description = "Memory of each node's device.", DefaultValueFactory = _ => "256MiB" };
        var timeout = new Option<int>("--timeout") { Description = "Minutes the whole run may take; whatever has not finished by then is a violation.", DefaultValueFactory = _ => 15 };
        var report = new Option<string?>("--report") { Description = "Also write the report as JSON to this file." };
        var keep = new Option<bool>("--keep") { Description = "Keep the nodes' directory (logs per node, the SQLite journal) after the run." };
        var command = new Command("chaos",
            "Starts N node processes, submits a seeded stream of multi-stage jobs whose stages share buffers P2P across nodes, " +
            "and SIGKILLs (and restarts) nodes mid-job on a seeded schedule, never a majority at once. Then checks that every job " +
            "completed exactly once with a result equal to the host reference, every device is back at its baseline (memory, " +
            "contexts, exports, imports, waits), and the journal matches what ran. Prints a live view, then a report with the recovery " +
            "time of each fault (fault → first completion of work redone because of it, or of any job if nothing was). Exit code 0: no violation; 1: violations; " +
            "2: the run could not be made.");
        foreach (var option in new Option[] { seed, nodes, kills, freeze, netns, partitions, perWave, memory, timeout, report, keep })
            command.Options.Add(option);
        command.SetAction(async (parse, cancel) =>
        {
            var options = new ChaosOptions
            {
                Seed = parse.GetValue(seed) ?? Random.Shared.Next(1, 100_000),
                Nodes = parse.GetValue(nodes),
                Kills = parse.GetValue(kills),
                Freeze = parse.GetValue(freeze),
                Namespaces = parse.GetValue(netns),
                Partitions = parse.GetValue(partitions),
                JobsPerWave = parse.GetValue(perWave),
                DeviceMemory = parse.GetValue(memory)!,
                Timeout = TimeSpan.FromMinutes(parse.GetValue(timeout)),
                ReportPath = parse.GetValue(report),
                KeepFiles = parse.GetValue(keep),
            };
            if (options.Problem() is { } problem)
            {
                await Console.Error.WriteLineAsync($"fabric chaos: {problem}");
                return 2;
            }
            return await RunAsync(options, InspectCommands.WideConsole(), cancel);
        });
        return command;
    }

    public static async Task<int> RunAsync(ChaosOptions options, IAnsiConsole console, CancellationToken cancel)
    {
        ChaosReport report;
        try
        {
            if (console.Profile.Capabilities.Interactive && !Console.IsOutputRedirected)
            {
                var live = new ChaosLiveView();
                report = await live.ShowAsync(console, () => new ChaosRunner(options, live).RunAsync(cancel));
            }
            else
            {
                report = await new ChaosRunner(options, new LineChaosView(Console.Out)).RunAsync(cancel);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync($"fabric chaos: stopped before the end (seed {options.Seed}); the nodes it started are gone");
            return 2;
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync($"fabric chaos: the run could not be made (seed {options.Seed}): {e}");
            return 2;
        }
        Write(console, report);
        return report.Violations.Length == 0 ? 0 : 1;
    }

    /// <summary>The report as tables: faults with their recovery, jobs, devices, invariants, and how to replay.</summary>
    public static void Write(IAnsiConsole console, ChaosReport report)
    {
        // Time columns in seconds: when the fault struck (run clock), how long the victims were down, when the cluster was
        // whole again, and the recovery (fault → first completion of work redone because of it; the task is in the JSON report).
        var faults = new FitTable(new("#"), new("fault"), new("victims"), new("at s", 2), new("during", 3), new("down s", 1), new("whole s", 2), new("hit", 3),
            new("tasks cut", 2), new("recovery s"), new("resolver kept", 2)) { Title = $"faults (seed {report.Seed}, {report.Nodes} nodes)" };
        foreach (var f in report.Faults)
            faults.AddRow($"{f.Number}", f.Kind, string.Join(",", f.Victims), $"{f.AtSeconds:0.0}", Markup.Escape($"{f.Job.Split('-')[^2]}-{f.Job.Split('-')[^1]} {f.JobProgress:P0}"),
                $"{f.DownSeconds:0.0}", $"{f.HealedSeconds:0.0}", f.Role, $"{f.InterruptedTasks}", f.RecoverySeconds is { } r ? $"{r:0.00}" : "-",
                f.Kept is { } kept ? (kept.Length == 0 ? "nobody" : string.Join(",", kept)) : "-");
        faults.Write(console);

        var jobs = report.Jobs;
        console.MarkupLine($"jobs: {jobs.Count(j => j.Status == "Completed")}/{jobs.Length} completed, " +
                           $"{jobs.Count(j => j.Verified == true)} verified against the host reference, " +
                           $"{jobs.Sum(j => j.Tasks)} tasks, {jobs.Sum(j => j.Retries)} retried, {jobs.Sum(j => j.Recomputations)} recomputed (lineage), " +
                           $"{jobs.Count(j => j.Runs > 1)} recovered on another node");
        var devices = new FitTable(new("device"), new("memory used"), new("allocs", 1), new("contexts", 1), new("exports", 2), new("imports", 2), new("waits", 3),
            new("queued", 3), new("baseline")) { Title = "devices at the end" };
        foreach (var d in report.Devices)
            devices.AddRow(d.Device, $"{d.MemoryUsed:N0}", $"{d.Allocations}", $"{d.Contexts}", $"{d.Exports}", $"{d.Imports}", $"{d.Waiters}", $"{d.QueueDepth}",
                d.AtBaseline ? "[green]yes[/]" : "[red]no[/]");
        devices.Write(console);

        var invariants = new Table().Title("invariants").AddColumns("invariant", "violations");
        foreach (var name in report.InvariantsChecked)
        {
            var count = report.Violations.Count(v => v.Invariant == name);
            invariants.AddRow(name, count == 0 ? "[green]0[/]" : $"[red]{count}[/]");
        }
        console.Write(invariants);
        foreach (var v in report.Violations)
            console.MarkupLine($"[red]✗ {Markup.Escape(v.Invariant)}[/] {Markup.Escape(v.Subject)}: {Markup.Escape(v.Detail)}");

        string Seconds(double? s) => s is { } v ? $"{v:0.00} s" : "n/a";
        console.MarkupLine($"recovery: median {Seconds(report.MedianRecovery)}, median when a task node was hit {Seconds(report.MedianTaskNodeRecovery)} " +
                           $"(goal ≤ 5 s), max {Seconds(report.MaxRecovery)}");
        console.MarkupLine($"{report.Kills} kills, {report.Freezes} freezes, {report.Partitions} partitions, {report.Jobs.Length} jobs in {report.Seconds:0} s: " +
                           (report.Violations.Length == 0 ? "[green]0 violations[/]" : $"[red]{report.Violations.Length} violations[/]"));
        console.MarkupLine($"seed {report.Seed}; replay with: {Markup.Escape(report.Replay)}");
    }
}
