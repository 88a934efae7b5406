using Spectre.Console;

namespace Fabric.Node.Cli;

/// <summary>
/// A table that fits the terminal: when its columns are wider than the console, the least important are left out
/// (a grey line then names them, and <c>--json</c> has everything) rather than every cell broken over many lines.
/// Piped, the console is wide (see <see cref="InspectCommands.WideConsole"/>) and every column is shown.
/// </summary>
public sealed class FitTable
{
    /// <summary>A column: its header, and its rank — 0 is always shown, higher ranks are left out first.</summary>
    public sealed record Column(string Header, int Rank = 0);

    private readonly Column[] _columns;
    private readonly List<string[]> _rows = [];

    public FitTable(params Column[] columns) => _columns = columns;

    /// <summary>A row: one cell per column, as Spectre markup.</summary>
    public FitTable AddRow(params string[] cells)
    {
        if (cells.Length != _columns.Length) throw new ArgumentException($"a row of {cells.Length} cells for {_columns.Length} columns");
        _rows.Add(cells);
        return this;
    }

    /// <summary>A caption under the table (markup).</summary>
    public string? Caption { get; init; }

    /// <summary>A title over the table (markup).</summary>
    public string? Title { get; init; }

    /// <summary>The columns shown at <paramref name="width"/>: all that fit, dropping the highest rank first (the rightmost of a rank first).</summary>
    public IReadOnlyList<int> ShownAt(int width)
    {
        var shown = Enumerable.Range(0, _columns.Length).ToList();
        while (Width(shown) > width)
        {
            var drop = shown.Where(i => _columns[i].Rank > 0).OrderByDescending(i => _columns[i].Rank).ThenByDescending(i => i).FirstOrDefault(-1);
            if (drop < 0) break; // only the essential left: Spectre wraps them
            shown.Remove(drop);
        }
        return shown;
    }

    /// <summary>The width a square-bordered table of these columns takes: each column its widest cell plus a space either side and a rule.</summary>
    private int Width(IEnumerable<int> columns) =>
        1 + columns.Sum(i => 3 + Math.Max(_columns[i].Header.Length, _rows.Count == 0 ? 0 : _rows.Max(r => Markup.Remove(r[i]).Length)));

    public void Write(IAnsiConsole console)
    {
        var shown = ShownAt(console.Profile.Width);
        var table = new Table().AddColumns([.. shown.Select(i => _columns[i].Header)]);
        foreach (var row in _rows) table.AddRow([.. shown.Select(i => row[i])]);
        if (Caption is not null) table.Caption(Caption);
        if (Title is not null) table.Title(Title);
        console.Write(table);
        if (shown.Count < _columns.Length)
            console.MarkupLine($"[grey]left out at {console.Profile.Width} columns: " +
                               $"{Markup.Escape(string.Join(", ", Enumerable.Range(0, _columns.Length).Except(shown).Select(i => _columns[i].Header)))} " +
                               "(a wider terminal, or --json, shows them)[/]");
    }
}
