using System.CommandLine;
using System.Text.Json;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Node.Gateway;
using Fabric.Node.Jobs;
using Spectre.Console;

namespace Fabric.Node.Cli;

/// <summary><c>fabric submit</c>, <c>fabric jobs</c>, <c>fabric job</c>: jobs through any node's gateway.</summary>
public static class JobCommands
{
    private static Option<string> GatewayOption() => new("--gateway")
    {
        Description = $"Any node's HTTP gateway. Default: $FABRIC_GATEWAY, else {GatewayClient.DefaultUrl}.",
    };

    private static GatewayClient Gateway(string? url) =>
        new(url ?? Environment.GetEnvironmentVariable("FABRIC_GATEWAY") ?? GatewayClient.DefaultUrl);

    public static Command Submit()
    {
        var file = new Argument<FileInfo>("job.json") { Description = "The job spec (see Fabric.Core/Jobs/README.md)." };
        var wait = new Option<bool>("--wait") { Description = "Show the job's progress per stage until it ends, then check its outputs against the host reference." };
        var gateway = GatewayOption();
        var command = new Command("submit", "Submits a job (a DAG of tasks) to the cluster and prints its id. Invalid specs are refused with a code and a sentence naming the task; nothing is stored.");
        command.Arguments.Add(file);
        command.Options.Add(wait);
        command.Options.Add(gateway);
        command.SetAction(async (parse, cancel) =>
        {
            var path = parse.GetValue(file)!;
            if (!path.Exists)
            {
                await Console.Error.WriteLineAsync($"fabric submit: {path.FullName} does not exist");
                return 2;
            }
            using var client = Gateway(parse.GetValue(gateway));
            try
            {
                var json = await File.ReadAllTextAsync(path.FullName, cancel);
                var jobId = await client.SubmitAsync(json, cancel);
                Console.Out.WriteLine(jobId);
                if (!parse.GetValue(wait)) return 0;
                return await WaitAsync(client, jobId, JobJson.Parse(json), cancel);
            }
            catch (Exception e) when (e is GatewayException or FabricException)
            {
                await Console.Error.WriteLineAsync($"fabric submit: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    /// <summary>A progress bar per stage until the job ends; then every output is compared with the host reference.</summary>
    public static async Task<int> WaitAsync(GatewayClient client, string jobId, JobSpec spec, CancellationToken cancel)
    {
        JobView view = await client.JobAsync(jobId, cancel);
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async progress =>
            {
                var bars = view.TaskDetails.GroupBy(t => t.Stage).OrderBy(g => g.Key)
                    .ToDictionary(g => g.Key, g => progress.AddTask($"stage {g.Key + 1} ({g.Count()} tasks)", maxValue: g.Count()));
                while (true)
                {
                    foreach (var (stage, bar) in bars)
                        bar.Value = view.TaskDetails.Count(t => t.Stage == stage && t.Completions > 0);
                    progress.Refresh();
                    if (view.Status is nameof(JobStatus.Completed) or nameof(JobStatus.Failed)) break;
                    await Task.Delay(200, cancel);
                    view = await client.JobAsync(jobId, cancel);
                }
            });
        if (view.Status != nameof(JobStatus.Completed))
        {
            AnsiConsole.MarkupLine($"[red]job {jobId} failed:[/] {Markup.Escape(view.Error ?? "")}");
            return 1;
        }
        var failures = 0;
        foreach (var (output, bytes, ok) in await JobVerifier.VerifyAsync(client, jobId, spec, cancel))
        {
            if (!ok) failures++;
            AnsiConsole.MarkupLine($"  {(ok ? "[green]✓[/]" : "[red]✗[/]")} {Markup.Escape(output)}: {bytes:N0} bytes {(ok ? "match" : "DIFFER from")} the host reference");
        }
        var recomputed = view.TaskDetails.Sum(t => t.Recomputations);
        AnsiConsole.MarkupLine($"job {jobId}: {view.CompletedTasks}/{view.Tasks} tasks, {view.Runs} run(s), {recomputed} recomputation(s)" +
                               (failures == 0 ? " — [green]result verified[/]" : $" — [red]{failures} output(s) wrong[/]"));
        return failures == 0 ? 0 : 1;
    }

    public static Command Jobs()
    {
        var gateway = GatewayOption();
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var command = new Command("jobs", "Lists every job with its status and progress.");
        command.Options.Add(gateway);
        command.Options.Add(json);
        command.SetAction(async (parse, cancel) =>
        {
            using var client = Gateway(parse.GetValue(gateway));
            try
            {
                var jobs = await client.JobsAsync(cancel);
                if (parse.GetValue(json)) { Console.Out.WriteLine(JsonSerializer.Serialize(jobs, HttpGateway.Json)); return 0; }
                var table = new Table().AddColumns("job", "name", "status", "tasks", "runs", "submitted", "finished");
                foreach (var j in jobs)
                    table.AddRow(Markup.Escape(j.JobId), Markup.Escape(j.Name), j.Status, $"{j.CompletedTasks}/{j.Tasks}", j.Runs.ToString(),
                        j.SubmittedAt?.ToString("u") ?? "", j.FinishedAt?.ToString("u") ?? "");
                InspectCommands.WideConsole().Write(table);
                return 0;
            }
            catch (GatewayException e)
            {
                await Console.Error.WriteLineAsync($"fabric jobs: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    public static Command Job()
    {
        var id = new Argument<string>("id") { Description = "The job id that fabric submit printed." };
        var output = new Option<string>("--output") { Description = "Fetch this output buffer of the completed job." };
        var outFile = new Option<FileInfo>("--out") { Description = "Where to write the fetched output (with --output)." };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var gateway = GatewayOption();
        var command = new Command("job", "Shows one job: its tasks, where each was placed, attempts, recomputations and timings; or fetches an output.");
        command.Arguments.Add(id);
        foreach (var option in new Option[] { output, outFile, json, gateway }) command.Options.Add(option);
        command.SetAction(async (parse, cancel) =>
        {
            using var client = Gateway(parse.GetValue(gateway));
            var jobId = parse.GetValue(id)!;
            try
            {
                if (parse.GetValue(output) is { } name)
                {
                    if (parse.GetValue(outFile) is not { } file)
                    {
                        await Console.Error.WriteLineAsync("fabric job: --output needs --out FILE");
                        return 2;
                    }
                    var bytes = await client.OutputAsync(jobId, name, cancel);
                    await File.WriteAllBytesAsync(file.FullName, bytes, cancel);
                    Console.Out.WriteLine($"wrote {bytes.Length:N0} bytes of {name} to {file.FullName}");
                    return 0;
                }
                var view = await client.JobAsync(jobId, cancel);
                if (parse.GetValue(json)) { Console.Out.WriteLine(JsonSerializer.Serialize(view, HttpGateway.Json)); return 0; }
                var console = InspectCommands.WideConsole();
                console.MarkupLine($"job [bold]{Markup.Escape(view.JobId)}[/] ({Markup.Escape(view.Name)}): {view.Status}, {view.CompletedTasks}/{view.Tasks} tasks, " +
                                   $"{view.Runs} run(s) on {Markup.Escape(string.Join(", ", view.RunNodes))}");
                if (view.Error is { } error) console.MarkupLine($"[red]{Markup.Escape(error)}[/]");
                var table = new Table().AddColumns("task", "stage", "status", "attempts", "placed on", "recomputed", "seconds", "last error");
                foreach (var t in view.TaskDetails)
                    table.AddRow(Markup.Escape(t.Name), (t.Stage + 1).ToString(), t.Status, t.Attempts.ToString(), Markup.Escape(string.Join(" → ", t.Placements)),
                        t.Recomputations.ToString(), $"{t.Seconds:0.000}", Markup.Escape(t.LastError ?? ""));
                console.Write(table);
                foreach (var o in view.Outputs) console.MarkupLine($"output {Markup.Escape(o.Name)}: {o.Bytes:N0} bytes");
                return 0;
            }
            catch (GatewayException e)
            {
                await Console.Error.WriteLineAsync($"fabric job: {e.Message}");
                return 1;
            }
        });
        return command;
    }
}
