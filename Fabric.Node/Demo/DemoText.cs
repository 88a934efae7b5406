using Fabric.Core.Protocol;
using Spectre.Console;

namespace Fabric.Node.Demo;

/// <summary>A demo's checks: each printed with a check mark or a cross, the crosses counted.</summary>
internal sealed class DemoChecks(IAnsiConsole console)
{
    public int Failures { get; private set; }

    public void Check(string what, bool ok, string detail)
    {
        if (!ok) Failures++;
        console.MarkupLine($"  {(ok ? "[green]✓[/]" : "[red]✗[/]")} {Markup.Escape(what)}: {Markup.Escape(detail)}");
    }
}

/// <summary>How the demos print: numbered steps, device tables.</summary>
internal static class DemoText
{
    public static void Step(IAnsiConsole console, int number, string text) =>
        console.MarkupLine($"\n[bold blue]{number}.[/] [bold]{Markup.Escape(text)}[/]");

    public static void ShowDevices(IAnsiConsole console, IReadOnlyList<DeviceInfo> devices)
    {
        var table = new Cli.FitTable(new("device"), new("kind", 3), new("group", 3), new("used"), new("total"), new("contexts", 1), new("exports", 1),
            new("imports", 1), new("done", 2), new("failed", 2));
        foreach (var d in devices)
            table.AddRow(Markup.Escape(d.Id.ToString()), Markup.Escape(d.Kind), d.IommuGroup.ToString(), Bytes(d.MemoryUsed), Bytes(d.MemoryTotal),
                d.OpenContexts.ToString(), d.Exports.ToString(), d.Imports.ToString(), d.CompletedSubmissions.ToString(), d.FailedSubmissions.ToString());
        table.Write(console);
    }

    /// <summary>Bytes as a person reads them: exact below 1 MiB, else in MiB.</summary>
    public static string Bytes(long bytes) => bytes < 1 << 20 ? $"{bytes:N0} B" : $"{bytes / (double)(1 << 20):0.#} MiB";
}
