using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Fabric.Core.Gateway;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Node.Gateway;
using Fabric.Node.Jobs;
using Spectre.Console;

namespace Fabric.Node.Cli;

/// <summary><c>fabric submit</c>, <c>fabric jobs</c>, <c>fabric job</c>: jobs through any node's gateway.</summary>
public static class JobCommands
{
    /// <summary>How long a submission keeps trying the gateways while they fail transiently (a node just lost).</summary>
    private static readonly TimeSpan SubmitPatience = TimeSpan.FromSeconds(60);

    private static Option<bool> NoVerifyOption() => new("--no-verify")
    {
        Description = "With --wait: do not check the outputs against the host reference (the check recomputes the whole job on this machine).",
    };

    private static Option<string> TimeoutOption() => new("--timeout")
    {
        Description = "With --wait: give up waiting after this long (e.g. 90s, 10m, 2h; the job goes on). Default 1h.",
        DefaultValueFactory = _ => "1h",
    };

    public static Command Submit()
    {
        var file = new Argument<FileInfo>("job.json") { Description = "The job spec (see Fabric.Core/Jobs/README.md)." };
        var wait = new Option<bool>("--wait")
        {
            Description = "Show the job's progress per stage until it ends, through the loss of nodes (moving to another gateway when " +
                          "the one it uses goes), then check its outputs against the host reference.",
        };
        var noVerify = NoVerifyOption();
        var timeout = TimeoutOption();
        var id = new Option<string>("--id")
        {
            Description = "The job's id (1 to 64 letters, digits, '.', '_' or '-'). Submitting the same spec under it again starts nothing " +
                          "twice; another spec under it is refused (EEXIST). Default: a new id, yyyyMMdd-HHmmss-xxxxxx.",
        };
        var gateway = Gateways.Option();
        var command = new Command("submit",
            "Submits a job (a DAG of tasks) to the cluster and prints its id. Invalid specs are refused with a code and a sentence naming " +
            "the task; nothing is stored. Exit 0 when submitted (with --wait: completed, and its outputs verified), 1 when refused or " +
            "failed, 2 for a usage error.");
        command.Arguments.Add(file);
        foreach (var option in new Option[] { wait, noVerify, timeout, id, gateway }) command.Options.Add(option);
        command.SetAction(async (parse, cancel) =>
        {
            var path = parse.GetValue(file)!;
            if (Directory.Exists(path.FullName))
                return await Usage("submit", $"{path.FullName} is a directory, not a job spec file");
            if (!path.Exists) return await Usage("submit", $"{path.FullName} does not exist");
            if (!TryDuration(parse.GetValue(timeout)!, out var patience))
                return await Usage("submit", $"--timeout: '{parse.GetValue(timeout)}' is not a duration (examples: 90s, 10m, 2h)");
            string json;
            try { json = await File.ReadAllTextAsync(path.FullName, cancel); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"fabric submit: cannot read {path.FullName}: {e.Message}");
                return 1;
            }
            JobSpec spec;
            try { spec = JobJson.Parse(json); }
            catch (FabricException e)
            {
                await Console.Error.WriteLineAsync($"fabric submit: {path.FullName}: {e.Message}");
                return 1;
            }
            // An id of our own, so that a submission sent again (its answer lost with a node) starts nothing twice.
            var jobId = parse.GetValue(id) ?? $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
            return await Gateways.RunAsync("submit", parse.GetValue(gateway), async gateways =>
            {
                // Each gateway once; while one answers 5xx (a node just lost, its shards moving), again for a while; when
                // none answers, whether the job was accepted is settled by asking for it once the submission has expired.
                var outcome = await Submission.SubmitAsync(gateways, json, jobId, SubmitPatience, Submission.SettleAfter, cancel);
                if (outcome == Submission.Outcome.NotStarted)
                {
                    await Console.Error.WriteLineAsync($"fabric submit: job {jobId} was not started: no gateway answered its submission, and it has " +
                                                       "expired; submit it again");
                    return 1;
                }
                Console.Out.WriteLine(jobId);
                if (!parse.GetValue(wait)) return 0;
                return await WaitAsync("submit", gateways, jobId, spec, !parse.GetValue(noVerify), patience, cancel);
            });
        });
        return command;
    }

    private static async Task<int> Usage(string command, string message)
    {
        await Console.Error.WriteLineAsync($"fabric {command}: {message}");
        return 2;
    }

    /// <summary>A duration such as <c>90s</c>, <c>10m</c>, <c>2h</c>, <c>1d</c> or plain seconds; positive.</summary>
    public static bool TryDuration(string text, out TimeSpan duration)
    {
        var t = text.Trim();
        var (number, unit) = t.Length > 0 && char.IsLetter(t[^1]) ? (t[..^1], char.ToLowerInvariant(t[^1])) : (t, 's');
        var ok = double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) && value > 0;
        duration = !ok ? default : unit switch
        {
            's' => TimeSpan.FromSeconds(value),
            'm' => TimeSpan.FromMinutes(value),
            'h' => TimeSpan.FromHours(value),
            'd' => TimeSpan.FromDays(value),
            _ => default,
        };
        return duration > TimeSpan.Zero;
    }

    /// <summary>
    /// A progress bar per stage until the job ends; then every output is compared with the host reference (unless
    /// <paramref name="verify"/> is false). Asks through any of <paramref name="gateways"/>, learning the cluster's others,
    /// so the loss of the node it asks does not end the wait; gives up after <paramref name="timeout"/>. Exit code: 0 when
    /// the job completed (and its outputs match), 1 otherwise.
    /// </summary>
    public static async Task<int> WaitAsync(string command, GatewaySet gateways, string jobId, JobSpec? spec, bool verify, TimeSpan timeout, CancellationToken cancel)
    {
        var console = AnsiConsole.Console;
        if (!console.Profile.Capabilities.Interactive) console.Profile.Width = 1000; // piped: lines as long as they are
        gateways.Note = message => console.MarkupLine($"[grey]{Markup.Escape(message)}[/]");
        var clock = Stopwatch.StartNew();
        TimeSpan Left() => timeout - clock.Elapsed > TimeSpan.Zero ? timeout - clock.Elapsed : TimeSpan.Zero;

        // The stages as the first answer lists them; each answer then moves the bars (a line per completed stage when piped).
        List<(int Stage, int Tasks)>? stages = null;
        int Done(JobView v, int stage) => v.Stages.FirstOrDefault(s => s.Stage == stage)?.Completed ?? 0;
        List<(int Stage, int Tasks)> StagesOf(JobView v) => [.. v.Stages.Select(s => (s.Stage, s.Tasks))];
        JobView view;
        if (console.Profile.Capabilities.Interactive)
            view = await console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async progress =>
                {
                    Dictionary<int, ProgressTask>? bars = null;
                    return await gateways.FollowAsync(jobId, timeout, v =>
                    {
                        bars ??= (stages = StagesOf(v)).ToDictionary(s => s.Stage, s => progress.AddTask($"stage {s.Stage + 1} ({s.Tasks} tasks)", maxValue: s.Tasks));
                        foreach (var (stage, bar) in bars) bar.Value = Done(v, stage);
                        progress.Refresh();
                    }, cancel);
                });
        else
        {
            // Piped or in a file: no bars, a line as each stage completes.
            var reported = new HashSet<int>();
            view = await gateways.FollowAsync(jobId, timeout, v =>
            {
                if (stages is null)
                {
                    stages = StagesOf(v);
                    console.MarkupLine($"job {Markup.Escape(jobId)}: {v.Tasks} tasks in {stages.Count} stage(s), {v.Status}");
                }
                foreach (var (stage, tasks) in stages)
                    if (Done(v, stage) == tasks && reported.Add(stage))
                        console.MarkupLine($"stage {stage + 1}: {tasks} task(s) done at {clock.Elapsed.TotalSeconds:0.0} s");
            }, cancel);
        }
        if (!GatewaySet.HasEnded(view))
        {
            await Console.Error.WriteLineAsync($"fabric {command}: ETIMEDOUT: job {jobId} is still {view.Status} after {clock.Elapsed.TotalSeconds:0} s of waiting " +
                                               $"({view.CompletedTasks}/{view.Tasks} tasks); it goes on: wait again with fabric job {jobId} --wait");
            return 1;
        }
        if (view.Status != nameof(JobStatus.Completed))
        {
            var how = view.Status == nameof(JobStatus.Cancelled) ? "was cancelled" : "failed";
            console.MarkupLine($"[red]job {Markup.Escape(jobId)} {how}:[/] {Markup.Escape(view.Error ?? "")}");
            return 1;
        }
        var recomputed = view.TaskDetails.Sum(t => t.Recomputations);
        var summary = $"job {Markup.Escape(jobId)}: {view.CompletedTasks}/{view.Tasks} tasks, {view.Runs} run(s), {recomputed} recomputation(s)";
        if (!verify)
        {
            console.MarkupLine($"{summary} — completed; outputs not checked (--no-verify)");
            return 0;
        }
        spec ??= JobJson.Parse(await gateways.AskAsync((c, t) => c.SpecAsync(jobId, t), Left(), cancel));
        var outputs = spec.Buffers.Count(b => b.Output);
        console.MarkupLine($"checking {outputs} output(s): {Markup.Escape(JobVerifier.Method)} (skip with --no-verify)");
        var checking = Stopwatch.StartNew();
        var checks = await JobVerifier.VerifyAsync((output, t) => gateways.AskAsync((c, tt) => c.OutputAsync(jobId, output, tt), Left(), t), spec, cancel);
        foreach (var check in checks)
            console.MarkupLine($"  {(check.Matches ? "[green]✓[/]" : "[red]✗[/]")} {Markup.Escape(check.Output)}: {check.Bytes:N0} bytes " +
                               (check.Matches ? "match the host reference" : $"DIFFER from the host reference: {Markup.Escape(check.Difference!)}"));
        var failures = checks.Count(c => !c.Matches);
        console.MarkupLine($"{summary} — " + (failures == 0 ? "[green]result verified[/]" : $"[red]{failures} output(s) wrong[/]") +
                           $" (host check {checking.Elapsed.TotalSeconds:0.0} s)");
        return failures == 0 ? 0 : 1;
    }

    public static Command Jobs()
    {
        var gateway = Gateways.Option();
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var status = new Option<string>("--status") { Description = "Only the jobs of this status: running, completed, failed or cancelled." };
        var command = new Command("jobs", "Lists every job with its status and progress.");
        command.Options.Add(gateway);
        command.Options.Add(json);
        command.Options.Add(status);
        command.SetAction(async (parse, cancel) =>
        {
            var only = parse.GetValue(status);
            if (only is not null && (!Enum.TryParse<JobStatus>(only, ignoreCase: true, out var wanted) || wanted == JobStatus.Unknown))
                return await Usage("jobs", $"--status: '{only}' is not a job status (running, completed, failed, cancelled)");
            return await Gateways.RunAsync("jobs", parse.GetValue(gateway), async gateways =>
            {
                var jobs = (await gateways.AskAsync((c, t) => c.JobsAsync(t), GatewaySet.ReadPatience, cancel))
                    .Where(j => only is null || string.Equals(j.Status, only, StringComparison.OrdinalIgnoreCase)).ToArray();
                if (parse.GetValue(json)) { Console.Out.WriteLine(JsonSerializer.Serialize(jobs, HttpGateway.Json)); return 0; }
                var table = new FitTable(new("job"), new("name", 1), new("status"), new("tasks"), new("runs", 3), new("submitted", 2), new("finished", 2));
                foreach (var j in jobs)
                    table.AddRow(Markup.Escape(j.JobId), Markup.Escape(j.Name), j.Status, $"{j.CompletedTasks}/{j.Tasks}", j.Runs.ToString(),
                        j.SubmittedAt?.ToString("u") ?? "", j.FinishedAt?.ToString("u") ?? "");
                table.Write(InspectCommands.WideConsole());
                return 0;
            });
        });
        return command;
    }

    /// <summary>
    /// Every event of the job, read a page (<see cref="JobHistory.MaxEvents"/>) at a time: one line each — time, #sequence,
    /// sentence — or, with <paramref name="json"/>, one JSON array. Exit 0; an unknown job is the gateway's ENOENT (exit 1).
    /// </summary>
    private static async Task<int> PrintEventsAsync(GatewaySet gateways, string jobId, bool json, CancellationToken cancel)
    {
        var all = new List<JobHistoryEntry>();
        for (long from = 1; ;)
        {
            var page = await gateways.AskAsync((c, t) => c.EventsAsync(jobId, from, t), GatewaySet.ReadPatience, cancel);
            all.AddRange(page);
            if (page.Length < JobHistory.MaxEvents) break;
            from = page[^1].Sequence + 1;
        }
        if (json) { Console.Out.WriteLine(JsonSerializer.Serialize(all, HttpGateway.Json)); return 0; }
        foreach (var e in all)
            Console.Out.WriteLine($"{DateTimeOffset.FromUnixTimeMilliseconds(e.AtMs).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture)} " +
                                  $"#{e.Sequence} {e.Text}");
        return 0;
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Fetches the job's timeline (<c>GET /jobs/{id}/timeline</c>, a Chrome trace-event document), writes it indented to
    /// <paramref name="file"/> and says what it holds. Exit 0; an unknown job is the gateway's ENOENT, a file that cannot
    /// be written a code and a sentence naming it (exit 1).
    /// </summary>
    private static async Task<int> WriteTimelineAsync(GatewaySet gateways, string jobId, FileInfo file, CancellationToken cancel)
    {
        var document = await gateways.AskAsync((c, t) => c.GetAsync<JsonObject>($"jobs/{Uri.EscapeDataString(jobId)}/timeline", t), GatewaySet.ReadPatience, cancel);
        try { await File.WriteAllTextAsync(file.FullName, document.ToJsonString(Indented) + "\n", cancel); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var code = e switch { UnauthorizedAccessException => ErrorCode.EACCES, DirectoryNotFoundException => ErrorCode.ENOENT, _ => ErrorCode.EIO };
            await Console.Error.WriteLineAsync($"fabric job: {code}: cannot write the timeline of job {jobId} to {file.FullName}: {e.Message}");
            return 1;
        }
        var counts = JobTimeline.Count(document);
        Console.Out.WriteLine($"wrote the timeline of job {jobId} to {file.FullName}: {counts.Tasks} task(s), {counts.Attempts} attempt(s), " +
                              $"{counts.NodeLosses} node loss(es), {counts.Events} trace events; open it in https://ui.perfetto.dev or chrome://tracing");
        return 0;
    }

    public static Command Job()
    {
        var id = new Argument<string>("id") { Description = "The job id that fabric submit printed." };
        var output = new Option<string>("--output") { Description = "Fetch this output buffer of the completed job." };
        var outFile = new Option<FileInfo>("--out") { Description = "Where to write the fetched output (with --output)." };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var wait = new Option<bool>("--wait")
        {
            Description = "Wait for the job to end as fabric submit --wait does (progress, through node loss, then its outputs checked " +
                          "against the host reference); the same output and exit codes.",
        };
        var cancelJob = new Option<bool>("--cancel")
        {
            Description = "Cancel the running job: its tasks stop, the device memory they held is released, and the job ends Cancelled " +
                          "(persisted: it stays cancelled). An ended job is refused.",
        };
        var events = new Option<bool>("--events")
        {
            Description = "Print the job's history as persisted, one line per event: its time (ISO-8601, UTC), #sequence number and a " +
                          "sentence (submitted, run-started, placed, completed, failed, lost, recomputed, run-stopped, job-completed, " +
                          "job-failed, cancelled). With --json: the events as JSON.",
        };
        var timeline = new Option<FileInfo>("--timeline")
        {
            HelpName = "FILE",
            Description = "Write the job's timeline to FILE: a Chrome trace-event JSON document with a row per device (grouped by node), " +
                          "a bar per attempt (named by its task, its outcome as category), and markers where nodes were lost. Open it in " +
                          "https://ui.perfetto.dev or chrome://tracing. A running job's timeline is drawn up to now.",
        };
        var noVerify = NoVerifyOption();
        var timeout = TimeoutOption();
        var gateway = Gateways.Option();
        var command = new Command("job", "Shows one job: its tasks, where each was placed, attempts, recomputations and timings; or its history " +
                                         "(--events); or writes its timeline (--timeline FILE); or fetches an output; or waits for it; or cancels it.");
        command.Arguments.Add(id);
        foreach (var option in new Option[] { output, outFile, json, events, timeline, wait, cancelJob, noVerify, timeout, gateway }) command.Options.Add(option);
        command.SetAction(async (parse, cancel) =>
        {
            var jobId = parse.GetValue(id)!;
            if (parse.GetValue(output) is not null && parse.GetValue(outFile) is null) return await Usage("job", "--output needs --out FILE");
            if (parse.GetValue(events) && (parse.GetValue(wait) || parse.GetValue(cancelJob) || parse.GetValue(output) is not null))
                return await Usage("job", "--events shows the history alone: leave out --wait, --cancel and --output");
            if (parse.GetValue(timeline) is { } timelineFile)
            {
                if (parse.GetValue(events) || parse.GetValue(wait) || parse.GetValue(cancelJob) || parse.GetValue(output) is not null)
                    return await Usage("job", "--timeline writes the timeline alone: leave out --events, --wait, --cancel and --output");
                if (Directory.Exists(timelineFile.FullName))
                    return await Usage("job", $"EINVAL: --timeline: {timelineFile.FullName} is a directory; name the file to write the timeline of job {jobId} to");
            }
            if (!TryDuration(parse.GetValue(timeout)!, out var patience))
                return await Usage("job", $"--timeout: '{parse.GetValue(timeout)}' is not a duration (examples: 90s, 10m, 2h)");
            return await Gateways.RunAsync("job", parse.GetValue(gateway), async gateways =>
            {
                if (parse.GetValue(cancelJob))
                {
                    // A Cancel sent again after a lost answer finds the job cancelled and answers the same.
                    var cancelled = await gateways.AskAsync((c, t) => c.CancelAsync(jobId, t), TimeSpan.FromSeconds(30), cancel);
                    Console.Out.WriteLine($"job {jobId} cancelled with {cancelled.CompletedTasks}/{cancelled.Tasks} tasks completed");
                    return 0;
                }
                if (parse.GetValue(events)) return await PrintEventsAsync(gateways, jobId, parse.GetValue(json), cancel);
                if (parse.GetValue(timeline) is { } timelineFile) return await WriteTimelineAsync(gateways, jobId, timelineFile, cancel);
                if (parse.GetValue(wait)) return await WaitAsync("job", gateways, jobId, null, !parse.GetValue(noVerify), patience, cancel);
                if (parse.GetValue(output) is { } name)
                {
                    var file = parse.GetValue(outFile)!;
                    var bytes = await gateways.AskAsync((c, t) => c.OutputAsync(jobId, name, t), GatewaySet.ReadPatience, cancel);
                    await File.WriteAllBytesAsync(file.FullName, bytes, cancel);
                    Console.Out.WriteLine($"wrote {bytes.Length:N0} bytes of {name} to {file.FullName}");
                    return 0;
                }
                var view = await gateways.AskAsync((c, t) => c.JobAsync(jobId, t), GatewaySet.ReadPatience, cancel);
                if (parse.GetValue(json)) { Console.Out.WriteLine(JsonSerializer.Serialize(view, HttpGateway.Json)); return 0; }
                var console = InspectCommands.WideConsole();
                console.MarkupLine($"job [bold]{Markup.Escape(view.JobId)}[/] ({Markup.Escape(view.Name)}): {view.Status}, {view.CompletedTasks}/{view.Tasks} tasks, " +
                                   $"{view.Runs} run(s) on {Markup.Escape(string.Join(", ", view.RunNodes))}");
                if (view.Error is { } error) console.MarkupLine($"[red]{Markup.Escape(error)}[/]");
                // Each attempt: its device and how it ended (Completed, Failed, NodeLost, RunLost, HandedOff, Abandoned, or Running).
                var table = new FitTable(new("task"), new("stage", 2), new("status"), new("attempts", 1), new("attempts: device and outcome", 1),
                    new("recomputed", 2), new("seconds", 1), new("last error", 3));
                foreach (var t in view.TaskDetails)
                {
                    var attempts = t.AttemptLog.IsDefaultOrEmpty ? string.Join(" → ", t.Placements)
                        : string.Join(" → ", t.AttemptLog.Select(a => $"{a.Device} {a.Outcome}"));
                    table.AddRow(Markup.Escape(t.Name), (t.Stage + 1).ToString(), t.Status, t.Attempts.ToString(), Markup.Escape(attempts),
                        t.Recomputations.ToString(), $"{t.Seconds:0.000}", Markup.Escape(t.LastError ?? ""));
                }
                table.Write(console);
                foreach (var o in view.Outputs) console.MarkupLine($"output {Markup.Escape(o.Name)}: {o.Bytes:N0} bytes");
                return 0;
            });
        });
        return command;
    }
}
