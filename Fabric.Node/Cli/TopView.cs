using System.Collections.Immutable;
using System.Globalization;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Fabric.Node.Cli;

/// <summary>
/// What one refresh of <c>fabric top</c> read: the cluster's devices, members and jobs as <paramref name="Gateway"/>
/// answered them at <paramref name="At"/>. <paramref name="Gateway"/> is null when no gateway answered; the devices,
/// nodes and jobs are then the last ones read (at <see cref="ReadAt"/>; none before the first answer).
/// </summary>
public sealed record TopSnapshot(
    DateTimeOffset At,
    string? Gateway,
    ImmutableArray<DeviceInfo> Devices,
    NodeList? Nodes,
    ImmutableArray<JobView> Jobs)
{
    /// <summary>The gateways asked, when none answered.</summary>
    public ImmutableArray<string> Tried { get; init; } = [];

    /// <summary>Why the read failed (the last gateway's failure, or a refusal), when it did.</summary>
    public string? Problem { get; init; }

    /// <summary>The read failed because the gateway refused it (a 4xx: say, EACCES without the API token), not for want of an answer.</summary>
    public bool Refused { get; init; }

    /// <summary>Why <c>GET /jobs</c> failed while the devices and nodes were read (the jobs shown are then the last read).</summary>
    public string? JobsProblem { get; init; }

    /// <summary>Since when the gateway is being asked for the jobs, while it has not answered (the jobs shown are then the last read).</summary>
    public DateTimeOffset? JobsAskedAt { get; init; }

    /// <summary>The last time the reads moved to another gateway, if they did.</summary>
    public TopSwitch? Switched { get; init; }

    /// <summary>When the devices, nodes and jobs shown were read: <see cref="At"/> when fresh; null when nothing was read yet.</summary>
    public DateTimeOffset? ReadAt { get; init; }
}

/// <summary>The reads moved from gateway <paramref name="From"/> to <paramref name="To"/> at <paramref name="At"/>, because of <paramref name="Why"/>.</summary>
public sealed record TopSwitch(string From, string To, DateTimeOffset At, string? Why);

/// <summary>
/// <c>fabric top</c>'s frame, pure: a snapshot and a width → a Spectre renderable (a header, then tables of the devices,
/// the nodes and the jobs, each fitted to the width as <see cref="FitTable"/> fits one: least important columns out first).
/// </summary>
public static class TopView
{
    /// <summary>How many ended jobs are shown under the running ones (the latest first).</summary>
    public const int FinishedShown = 5;

    /// <summary>Every frame's first line starts with this (frames printed one after another are split on it).</summary>
    public const string HeaderStart = "fabric top";

    private const int MemoryBarCells = 10;
    private const int ProgressBarCells = 20;

    /// <param name="hint">A hint for the header's end (the live view says how to quit), or null.</param>
    public static IRenderable Render(TopSnapshot snapshot, int width, string? hint = null)
    {
        var parts = new List<IRenderable>();
        parts.AddRange(Header(snapshot, hint).Select(line => new Markup(line)));
        if (snapshot.ReadAt is null) return new Rows(parts);
        parts.Add(Devices(snapshot.Devices, width));
        if (snapshot.Nodes is { } nodes) parts.Add(Nodes(nodes, snapshot.Gateway, snapshot.At, width));
        parts.Add(Jobs(snapshot, width));
        return new Rows(parts);
    }

    /// <summary>The header's lines (markup): who answered and when, the members up and the jobs running; a switch; a failure.</summary>
    public static IReadOnlyList<string> Header(TopSnapshot s, string? hint = null)
    {
        var time = Clock(s.At);
        var end = hint is null ? "" : $" · [grey]{Markup.Escape(hint)}[/]";
        var lines = new List<string>();
        if (s.Gateway is { } gateway)
        {
            var self = s.Nodes is { Self.Length: > 0 } n ? $" ({Markup.Escape(n.Self)})" : "";
            var members = s.Nodes?.Nodes ?? [];
            var up = members.Count(m => m.Status == "Up");
            var running = s.Jobs.Count(j => j.Status == "Running");
            lines.Add($"[bold]{HeaderStart}[/] — reading {Markup.Escape(gateway)}{self} · {time} · " +
                      $"nodes {(up == members.Length ? "[green]" : "[yellow]")}{up}/{members.Length} up[/] · jobs {running} running · {s.Devices.Length} devices{end}");
        }
        else
        {
            lines.Add($"[bold]{HeaderStart}[/] — [red]" + (s.Refused ? $"{Markup.Escape(string.Join(", ", s.Tried))} refuses" :
                $"no gateway answers (tried {Markup.Escape(string.Join(", ", s.Tried))})") + $"[/] · {time} · retrying{end}");
            if (s.Problem is { } problem) lines.Add($"[grey]{Markup.Escape(problem)}[/]");
            if (s.ReadAt is { } readAt)
                lines.Add($"[grey]the tables below are the last answer, read at {Clock(readAt)} ({Ago(s.At - readAt)} ago)[/]");
        }
        if (s.Switched is { } w)
            lines.Add($"[yellow]switched from {Markup.Escape(w.From)} to {Markup.Escape(w.To)} at {Clock(w.At)}[/]" +
                      (w.Why is null ? "" : $" [grey]({Markup.Escape(w.Why)})[/]"));
        return lines;
    }

    private static IRenderable Devices(ImmutableArray<DeviceInfo> devices, int width)
    {
        // What one looks at first stays on a narrow terminal: the device, its status, its memory, how busy it is.
        FitTable.Column[] columns = [new("device"), new("status"), new("memory used/total"), new("util"), new("queued/queues", 2), new("contexts", 1),
            new("exports", 3), new("imports", 3), new("waiters", 4), new("completed", 2), new("failed", 2)];
        var rows = devices.OrderBy(d => d.Id.Node, StringComparer.Ordinal).ThenBy(d => d.Id.Index).Select(d => new[]
        {
            Markup.Escape(d.Id.ToString()), Status(d), Memory(d.MemoryUsed, d.MemoryTotal), $"{d.Utilization * 100:0}%", $"{d.QueueDepth}/{d.Queues}",
            d.OpenContexts.ToString(CultureInfo.InvariantCulture), d.Exports.ToString(CultureInfo.InvariantCulture), d.Imports.ToString(CultureInfo.InvariantCulture),
            d.Waiters.ToString(CultureInfo.InvariantCulture), d.CompletedSubmissions.ToString(CultureInfo.InvariantCulture),
            d.FailedSubmissions == 0 ? "0" : $"[red]{d.FailedSubmissions}[/]",
        });
        return Fit($"Devices ({devices.Length})", columns, rows, width, devices.IsEmpty ? "no devices" : null);
    }

    private static IRenderable Nodes(NodeList nodes, string? gateway, DateTimeOffset now, int width)
    {
        FitTable.Column[] columns = [new("node"), new("status"), new("reachable", 1), new("devices", 1), new("address", 2), new("gateway", 3)];
        var rows = nodes.Nodes.Select(n => new[]
        {
            Markup.Escape(n.Node.Length == 0 ? "(not published)" : n.Node) + (n.Gateway is not null && n.Gateway == gateway ? " [grey](read)[/]" : ""),
            n.Status == "Up" ? "[green]Up[/]" : $"[yellow]{Markup.Escape(n.Status)}[/]", n.Reachable ? "yes" : "[red]no[/]",
            n.Devices.ToString(CultureInfo.InvariantCulture), Markup.Escape(n.Address), Markup.Escape(n.Gateway ?? ""),
        });
        var removed = nodes.Removed.IsDefaultOrEmpty ? null
            : "[grey]removed lately: " + Markup.Escape(string.Join(", ", nodes.Removed.Select(r =>
                $"{(r.Node.Length == 0 ? r.Address : r.Node)} ({r.Reason}, {Ago(now - DateTimeOffset.FromUnixTimeMilliseconds(r.AtMs))} ago)"))) + "[/]";
        return Fit($"Nodes ({nodes.Nodes.Length})", columns, rows, width, removed);
    }

    private static IRenderable Jobs(TopSnapshot s, int width)
    {
        var running = s.Jobs.Where(j => j.Status == "Running").OrderBy(j => j.SubmittedAt).ToList();
        var ended = s.Jobs.Where(j => j.Status != "Running").OrderByDescending(j => j.FinishedAt ?? j.SubmittedAt).ToList();
        FitTable.Column[] columns = [new("job"), new("status"), new("tasks done"), new("name", 1), new("stages", 2), new("runs", 3), new("time", 2), new("error", 4)];
        var rows = running.Concat(ended.Take(FinishedShown)).Select(j => new[]
        {
            Markup.Escape(j.JobId), JobStatus(j.Status), Progress(j.CompletedTasks, j.Tasks), Markup.Escape(j.Name),
            string.Join(" ", j.Stages.Select(st => $"{st.Completed}/{st.Tasks}")), j.Runs.ToString(CultureInfo.InvariantCulture),
            j.Status == "Running" ? j.SubmittedAt is { } at ? $"running {Elapsed(s.At - at)}" : "running"
            : j.FinishedAt is { } done ? $"ended {Ago(s.At - done)} ago" : "ended",
            Markup.Escape(j.Error ?? ""),
        });
        var notes = new List<string>();
        if (ended.Count > FinishedShown) notes.Add($"{ended.Count - FinishedShown} ended earlier not shown (fabric jobs lists them)");
        if (s.JobsProblem is { } problem) notes.Add($"[red]jobs not read: {Markup.Escape(problem)}[/]");
        if (s.JobsAskedAt is { } asked)
            notes.Add($"[grey]jobs asked {Ago(s.At - asked)} ago, no answer yet{(s.Jobs.IsEmpty ? "" : ": the jobs shown are the last read")}[/]");
        if (s.Jobs.IsEmpty && s.JobsProblem is null && s.JobsAskedAt is null) notes.Add("no jobs");
        return Fit($"Jobs ({running.Count} running, {ended.Count} ended)", columns, rows, width, notes.Count == 0 ? null : string.Join(" · ", notes));
    }

    /// <summary>
    /// A table of the columns that fit <paramref name="width"/> (chosen by <see cref="FitTable.ShownAt"/>), a grey line naming
    /// those left out, and a note under it; with no rows, the title and the note on one line.
    /// </summary>
    private static IRenderable Fit(string title, FitTable.Column[] columns, IEnumerable<string[]> rows, int width, string? note)
    {
        var all = rows.ToList();
        if (all.Count == 0) return new Markup($"[bold]{Markup.Escape(title)}[/]" + (note is null ? "" : $": {note}"));
        var fit = new FitTable(columns);
        foreach (var row in all) fit.AddRow(row);
        var shown = fit.ShownAt(width);
        var table = new Table { Title = new TableTitle(title, new Style(decoration: Decoration.Bold)) }.AddColumns([.. shown.Select(i => columns[i].Header)]);
        foreach (var row in all) table.AddRow([.. shown.Select(i => row[i])]);
        var parts = new List<IRenderable> { table };
        if (shown.Count < columns.Length)
            parts.Add(new Markup($"[grey]left out at {width} columns: {Markup.Escape(string.Join(", ", Enumerable.Range(0, columns.Length).Except(shown).Select(i => columns[i].Header)))}[/]"));
        if (note is not null) parts.Add(new Markup(note));
        return new Rows(parts);
    }

    private static string Status(DeviceInfo d) => d.Status switch
    {
        DeviceStatus.Operational => "[green]ok[/]",
        DeviceStatus.InReset => "[yellow]in reset[/]",
        DeviceStatus.Malfunction => $"[red]failed[/] {Markup.Escape(d.Failure ?? "")}",
        _ => "[grey]removed[/]",
    };

    private static string JobStatus(string status) => status switch
    {
        "Running" => "[blue]Running[/]",
        "Completed" => "[green]Completed[/]",
        "Failed" => "[red]Failed[/]",
        _ => $"[yellow]{Markup.Escape(status)}[/]",
    };

    /// <summary>A memory bar and its figures in MiB: <c>███░░░░░░░ 64/256 MiB</c>; yellow from 70 % full, red from 90 %.</summary>
    public static string Memory(long used, long total)
    {
        var fraction = total <= 0 ? 0 : (double)used / total;
        var color = fraction >= 0.9 ? "red" : fraction >= 0.7 ? "yellow" : "green";
        return $"{Bar(fraction, MemoryBarCells, color)} {MiB(used)}/{MiB(total)} MiB";
    }

    /// <summary>A progress bar and its count: <c>██████░░░░ 3/5</c>.</summary>
    public static string Progress(int done, int total) =>
        $"{Bar(total <= 0 ? 0 : (double)done / total, ProgressBarCells, done == total ? "green" : "blue")} {done}/{total}";

    private static string Bar(double fraction, int cells, string color)
    {
        var filled = (int)Math.Round(Math.Clamp(fraction, 0, 1) * cells, MidpointRounding.AwayFromZero);
        return (filled > 0 ? $"[{color}]{new string('█', filled)}[/]" : "") + (filled < cells ? $"[grey]{new string('░', cells - filled)}[/]" : "");
    }

    private static string MiB(long bytes) => (bytes / (double)(1L << 20)).ToString("0.#", CultureInfo.InvariantCulture);

    private static string Clock(DateTimeOffset at) => at.ToString("HH:mm:ss", CultureInfo.InvariantCulture);

    /// <summary>A running time as a clock shows it: <c>0:07</c>, <c>1:30</c>, <c>2:03:04</c>.</summary>
    private static string Elapsed(TimeSpan span)
    {
        var t = span < TimeSpan.Zero ? TimeSpan.Zero : span;
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : $"{t.Minutes}:{t.Seconds:00}";
    }

    private static string Ago(TimeSpan span) => span < TimeSpan.FromMinutes(1) ? $"{Math.Max(0, span.TotalSeconds):0} s"
        : span < TimeSpan.FromHours(1) ? $"{span.TotalMinutes:0} min" : $"{span.TotalHours:0.#} h";
}
