using System.Collections.Immutable;
using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Fabric.Core.Gateway;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Fabric.Node.Cli;

/// <summary>
/// <c>fabric top</c>: the cluster's devices, members and jobs, read from a gateway about once a second and drawn in place
/// (like nvtop or hl-smi); frames one after another when the output is not a terminal, one frame with <c>--once</c>.
/// </summary>
public static class TopCommand
{
    public static Command Build()
    {
        var gateway = Gateways.Option();
        var interval = new Option<string>("--interval")
        {
            Description = "How often to read the cluster again: seconds (0.5, 2) or a duration (2s, 1m); at least 0.1 s.",
            DefaultValueFactory = _ => "1",
        };
        var once = new Option<bool>("--once")
        {
            Description = "Print one frame as plain text and exit: 0 when a gateway answered, 1 (with the reason on standard error) when none did.",
        };
        var frames = new Option<int?>("--frames")
        {
            Description = "Show this many frames, one every --interval, then exit: 0, or 1 when no gateway answered the last one. " +
                          "Default: until q or Ctrl-C.",
        };
        var command = new Command("top",
            "A live view of the cluster: every device (status, memory used/total, utilization, queued submissions, contexts, exports, " +
            "imports, completed and failed submissions), every member (status, reachability, devices, address, gateway) and the running " +
            "jobs with the last few ended (progress, stages, status), read from a gateway every --interval and fitted to the terminal's " +
            "width. When the gateway it reads stops answering it moves to another it knows (those given, and those the members " +
            "publish) and says so in the header; while none answers it says which it tried and keeps trying. On a terminal it redraws " +
            "in place until q or Ctrl-C (exit 0); piped or in a file it prints plain frames one after another.");
        foreach (var option in new Option[] { gateway, interval, once, frames }) command.Options.Add(option);
        command.SetAction(async (parse, cancel) =>
        {
            var intervalText = parse.GetValue(interval)!;
            if (!JobCommands.TryDuration(intervalText, out var every) || every < TimeSpan.FromSeconds(0.1))
                return await Usage($"--interval: '{intervalText}' is not a duration of at least 0.1 s (examples: 0.5, 1, 2s, 1m)");
            var count = parse.GetValue(frames);
            if (count is < 1) return await Usage($"--frames: {count} is not a number of frames (1 or more)");
            if (count is not null && parse.GetValue(once)) return await Usage("--once is one frame: leave out --frames, or --once");
            // Ctrl-C (SIGINT) and SIGTERM end the view cleanly (exit 0, cursor back) instead of killing the process mid-frame.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            void Stop(PosixSignalContext signal)
            {
                signal.Cancel = true;
                stop.Cancel();
            }
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            return await Gateways.RunAsync("top", parse.GetValue(gateway), gateways =>
                RunAsync(gateways, every, parse.GetValue(once) ? 1 : count, parse.GetValue(once), stop.Token));
        });
        return command;
    }

    private static async Task<int> Usage(string message)
    {
        await Console.Error.WriteLineAsync($"fabric top: EINVAL: {message}");
        return 2;
    }

    /// <summary>
    /// Reads and shows frames until <paramref name="frames"/> were shown (null: until q, Ctrl-C or SIGTERM) → 0, or 1 when
    /// no gateway answered the last frame of a bounded run.
    /// </summary>
    private static async Task<int> RunAsync(GatewaySet gateways, TimeSpan interval, int? frames, bool once, CancellationToken cancel)
    {
        var reader = new TopReader(gateways, interval);
        var live = !once && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities is { Interactive: true, Ansi: true };
        var keys = !Console.IsInputRedirected;
        TopSnapshot? last = null;
        try
        {
            if (live)
            {
                var console = AnsiConsole.Console;
                const string hint = "q or Ctrl-C quits";
                await console.Live(new Markup($"[bold]{TopView.HeaderStart}[/] — reading {Markup.Escape(gateways.Current.BaseUrl)} …"))
                    .AutoClear(false).Overflow(VerticalOverflow.Ellipsis).Cropping(VerticalOverflowCropping.Bottom)
                    .StartAsync(async context =>
                    {
                        last = await LoopAsync(reader, interval, frames, keys, snapshot =>
                        {
                            context.UpdateTarget(TopView.Render(snapshot, console.Profile.Width, hint));
                            context.Refresh();
                        }, cancel);
                    });
            }
            else
            {
                // Plain text, frames one after another: no colours, no cursor moves; as wide as a line needs when piped.
                var console = AnsiConsole.Create(new AnsiConsoleSettings
                {
                    Out = new AnsiConsoleOutput(Console.Out),
                    Ansi = AnsiSupport.No,
                    ColorSystem = ColorSystemSupport.NoColors,
                });
                if (Console.IsOutputRedirected) console.Profile.Width = 1000;
                last = await LoopAsync(reader, interval, frames, keys, snapshot =>
                {
                    if (once && snapshot.Gateway is null) return; // --once prints a frame only when it has one
                    console.Write(TopView.Render(snapshot, console.Profile.Width));
                    console.WriteLine();
                }, cancel);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            return 0; // Ctrl-C or SIGTERM: Live has restored the cursor on its way out
        }
        if (frames is null || last is not { Gateway: null }) return 0;
        await Console.Error.WriteLineAsync(last.Refused ? $"fabric top: {last.Problem} (from {last.Tried[0]})"
            : $"fabric top: ENODEV: no gateway answers (tried {string.Join(", ", last.Tried)}): {last.Problem}");
        return 1;
    }

    /// <summary>
    /// Reads a frame every <paramref name="interval"/> and hands it to <paramref name="show"/>, until <paramref name="frames"/>
    /// were shown or q is pressed → the last frame; Ctrl-C → <see cref="OperationCanceledException"/>.
    /// </summary>
    private static async Task<TopSnapshot?> LoopAsync(TopReader reader, TimeSpan interval, int? frames, bool keys, Action<TopSnapshot> show,
        CancellationToken cancel)
    {
        TopSnapshot? last = null;
        for (var frame = 1; ; frame++)
        {
            var clock = Stopwatch.StartNew();
            last = await reader.ReadAsync(cancel);
            show(last);
            if (frames is { } n && frame >= n) return last;
            // The rest of the interval, watching for q (only when stdin is a terminal: a pipe's bytes are not keys).
            do
            {
                if (keys && QuitPressed(ref keys)) return last;
                var left = interval - clock.Elapsed;
                if (left > TimeSpan.Zero) await Task.Delay(left < TimeSpan.FromMilliseconds(50) ? left : TimeSpan.FromMilliseconds(50), cancel);
            } while (clock.Elapsed < interval);
        }
    }

    /// <summary>Whether q (or Q, or Esc) was pressed; a console that has no keys to give turns the watching off.</summary>
    private static bool QuitPressed(ref bool keys)
    {
        try
        {
            while (Console.KeyAvailable)
                if (Console.ReadKey(intercept: true) is { KeyChar: 'q' or 'Q' } or { Key: ConsoleKey.Escape }) return true;
        }
        catch (InvalidOperationException) { keys = false; }
        return false;
    }
}

/// <summary>
/// Reads <c>fabric top</c>'s frames through a <see cref="GatewaySet"/>. The devices and the members come from the gateway
/// that answered last, or the next one when it does not answer within <see cref="RequestPatience"/> (each gateway once a
/// frame: a frame never waits for rounds of retries); the gateways the members publish are learned as they appear. The
/// jobs come from that same gateway, waited for at most the frame's interval: a slower answer (a job region moving
/// after a node loss) is shown by a later frame, and the frames go on meanwhile.
/// </summary>
public sealed class TopReader
{
    /// <summary>How long a frame waits for one gateway's devices or members before it asks the next.</summary>
    public static readonly TimeSpan RequestPatience = TimeSpan.FromSeconds(3);

    private readonly GatewaySet _gateways;
    private readonly TimeSpan _jobsPatience;
    private readonly Func<DateTimeOffset> _now;
    private string? _why;
    private string? _failure;
    private TopSnapshot? _answered;
    private TopSwitch? _switched;
    private (GatewayClient Client, Task<JobView[]> Read, DateTimeOffset Since)? _jobs;

    /// <param name="jobsPatience">How long a frame waits for the jobs (the interval between frames).</param>
    /// <param name="now">The clock the frames are stamped with (default: local time now).</param>
    public TopReader(GatewaySet gateways, TimeSpan jobsPatience, Func<DateTimeOffset>? now = null)
    {
        _gateways = gateways;
        _jobsPatience = jobsPatience;
        _now = now ?? (() => DateTimeOffset.Now);
        // Why it moved on, as the set says it ("cannot reach …; trying …"): shown with the switch, not printed over the view.
        gateways.Note = message => _why = message;
    }

    /// <summary>One frame: the devices and members (both needed) and the jobs, from one gateway; or, when none answers, why.</summary>
    public async Task<TopSnapshot> ReadAsync(CancellationToken cancel)
    {
        var at = _now();
        try
        {
            var devices = await _gateways.AskAsync((c, t) => Bounded(c, c.DevicesAsync, t), TimeSpan.Zero, cancel);
            var nodes = await _gateways.AskAsync((c, t) => Bounded(c, c.NodesAsync, t), TimeSpan.Zero, cancel);
            var client = _gateways.Current;
            if (_answered?.Gateway is { } before && before != client.BaseUrl)
            {
                _switched = new TopSwitch(before, client.BaseUrl, at, _why);
                _why = null;
            }
            // A member publishes a gateway not known yet: learn it now, from the gateway that just answered.
            if (nodes.Nodes.Any(n => n.Gateway is { } url && IsNew(url))) await _gateways.LearnAsync(TimeSpan.Zero, cancel);
            var (jobs, jobsProblem, waitingSince) = await JobsAsync(client, at, cancel);
            _answered = new TopSnapshot(at, client.BaseUrl, [.. devices], nodes, jobs)
            {
                JobsProblem = jobsProblem,
                JobsAskedAt = waitingSince,
                Switched = _switched,
                ReadAt = at,
            };
            return _answered;
        }
        catch (GatewayException e)
        {
            return new TopSnapshot(at, null, _answered?.Devices ?? [], _answered?.Nodes, _answered?.Jobs ?? [])
            {
                Tried = e.Transient ? [.. _gateways.Urls] : [_gateways.Current.BaseUrl],
                Refused = !e.Transient,
                Problem = e.Transient ? _failure ?? e.Message : e.Message,
                Switched = _switched,
                ReadAt = _answered?.ReadAt,
            };
        }
    }

    /// <summary>
    /// The jobs from <paramref name="client"/>: its answer if it comes within the patience; else the last ones read and
    /// since when it is being asked (the request goes on, for the next frame).
    /// </summary>
    private async Task<(ImmutableArray<JobView> Jobs, string? Problem, DateTimeOffset? WaitingSince)> JobsAsync(
        GatewayClient client, DateTimeOffset at, CancellationToken cancel)
    {
        if (_jobs is { } asked && asked.Client != client)
        {
            _ = asked.Read.ContinueWith(static t => t.Exception, TaskScheduler.Default); // another gateway's: its outcome is not wanted
            _jobs = null;
        }
        _jobs ??= (client, client.JobsBriefAsync(cancel), at);
        var (_, read, since) = _jobs.Value;
        var last = _answered?.Jobs ?? [];
        if (await Task.WhenAny(read, Task.Delay(_jobsPatience, cancel)) != read) return (last, null, since);
        _jobs = null;
        try { return ([.. await read], null, null); }
        catch (GatewayException e) { return (last, e.Message, null); }
    }

    private bool IsNew(string url)
    {
        try { return !_gateways.Urls.Contains(GatewayUrl.Check(url)); }
        catch (ArgumentException) { return false; } // not a gateway URL: never learned
    }

    /// <summary>
    /// The request, given <see cref="RequestPatience"/> (a frozen node must not hold the view for the client's own timeout)
    /// and its failure kept: the last gateway's own sentence says more than the set's summary of the round.
    /// </summary>
    private async Task<T> Bounded<T>(GatewayClient client, Func<CancellationToken, Task<T>> request, CancellationToken cancel)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(RequestPatience);
        try
        {
            return await request(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            _failure = $"the Fabric gateway at {client.BaseUrl} did not answer within {RequestPatience.TotalSeconds:0} s";
            throw new GatewayException(_failure);
        }
        catch (GatewayException e)
        {
            _failure = e.Message;
            throw;
        }
    }
}
