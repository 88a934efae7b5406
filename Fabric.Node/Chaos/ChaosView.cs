using System.Collections.Immutable;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Fabric.Node.Chaos;

/// <summary>A chaos run's state at a moment, for the live view.</summary>
public sealed record ChaosStatus(
    TimeSpan Elapsed,
    ImmutableArray<(string Node, string State)> Nodes,
    int Jobs,
    int Completed,
    int Running,
    int Failed,
    int TasksDone,
    int TasksKnown,
    int FaultsStruck,
    int Faults,
    int Violations);

/// <summary>Where a chaos run shows what it does while it runs.</summary>
public interface IChaosView
{
    /// <summary>Something happened (a node started, a fault struck, a job ended).</summary>
    void Event(string line);

    /// <summary>The run's state now (called often; a view shows it at its own pace).</summary>
    void Status(ChaosStatus status);
}

/// <summary>
/// For logs and pipes: each event as a line stamped with the run's clock, and the state as a line every few seconds.
/// </summary>
public sealed class LineChaosView(TextWriter output) : IChaosView
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private TimeSpan _lastStatus = TimeSpan.Zero;

    public void Event(string line)
    {
        lock (output) output.WriteLine($"[{_clock.Elapsed.TotalSeconds,6:0.0}s] {line}");
    }

    public void Status(ChaosStatus status)
    {
        if (_clock.Elapsed - _lastStatus < TimeSpan.FromSeconds(5)) return;
        _lastStatus = _clock.Elapsed;
        Event(ChaosLiveView.Describe(status));
    }
}

/// <summary>For a terminal: a panel redrawn in place with the nodes, the jobs, the faults and the latest events.</summary>
public sealed class ChaosLiveView : IChaosView
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private readonly Queue<string> _events = new();
    private ChaosStatus? _status;
    private LiveDisplayContext? _context;

    /// <summary>Runs <paramref name="run"/> with this view drawn live on <paramref name="console"/>.</summary>
    public async Task<T> ShowAsync<T>(IAnsiConsole console, Func<Task<T>> run)
    {
        T result = default!;
        await console.Live(Render()).AutoClear(false).StartAsync(async context =>
        {
            _context = context;
            result = await run();
            Refresh();
        });
        return result;
    }

    public void Event(string line)
    {
        lock (_events)
        {
            _events.Enqueue($"[{_clock.Elapsed.TotalSeconds,6:0.0}s] {line}");
            while (_events.Count > 12) _events.Dequeue();
        }
        Refresh();
    }

    public void Status(ChaosStatus status)
    {
        _status = status;
        Refresh();
    }

    private void Refresh()
    {
        if (_context is null) return;
        lock (_events) _context.UpdateTarget(Render());
    }

    private IRenderable Render()
    {
        var rows = new List<IRenderable>();
        if (_status is { } s)
        {
            rows.Add(new Markup(string.Join("  ", s.Nodes.Select(n => $"{Markup.Escape(n.Node)} " + n.State switch
            {
                "up" => "[green]up[/]",
                "frozen" => "[blue]frozen[/]",
                _ => "[red]down[/]",
            }))));
            rows.Add(new Markup($"jobs [green]{s.Completed} done[/], {s.Running} running{(s.Failed > 0 ? $", [red]{s.Failed} failed[/]" : "")} of {s.Jobs}" +
                                $" · tasks {s.TasksDone}/{s.TasksKnown} · faults {s.FaultsStruck}/{s.Faults} · " +
                                (s.Violations == 0 ? "[green]0 violations[/]" : $"[red]{s.Violations} violations[/]") + $" · {s.Elapsed.TotalSeconds:0} s"));
        }
        lock (_events) rows.AddRange(_events.Select(e => new Text(e)));
        return new Panel(new Rows(rows)).Header("fabric chaos").Expand();
    }

    public static string Describe(ChaosStatus s) =>
        $"{string.Join(" ", s.Nodes.Select(n => $"{n.Node}:{n.State}"))} · jobs {s.Completed} done, {s.Running} running, {s.Failed} failed of {s.Jobs}" +
        $" · tasks {s.TasksDone}/{s.TasksKnown} · faults {s.FaultsStruck}/{s.Faults} · {s.Violations} violations";
}
