using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Node.Cli;
using Spectre.Console;
using Xunit.Abstractions;

namespace Fabric.Tests.Cli;

/// <summary>The CLI's tables on an 80-column terminal: every line fits, and each value is whole on one line.</summary>
public sealed class NarrowTerminalTests(ITestOutputHelper output)
{
    private static (IAnsiConsole Console, StringWriter Text) Terminal(int width)
    {
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(text), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = width;
        return (console, text);
    }

    private static DeviceInfo Device(string node, int index, long used) => new(new DeviceId(node, index), "fabric-sim", index, 4096, 4,
        256L << 20, used, (256L << 20) - used, 0.12, 3, 2, 1, 5, 123_456, 7, 0, 0.42, false, 0, 1);

    [Fact]
    public void The_devices_table_fits_80_columns_with_each_device_and_figure_whole()
    {
        var devices = new[] { Device("node-with-a-long-name", 0, 64L << 20), Device("n2", 1, 1L << 30 >> 3) };
        var (console, text) = Terminal(80);

        InspectCommands.WriteDevices(console, devices);

        output.WriteLine(text.ToString());
        var lines = text.ToString().Split('\n');
        Assert.All(lines, l => Assert.True(l.TrimEnd('\r').Length <= 80, $"{l.Length} columns: {l}"));
        Assert.Contains(lines, l => l.Contains("node-with-a-long-name/dev0") && l.Contains("64 MiB") && l.Contains("256 MiB"));
        Assert.Contains(lines, l => l.Contains("n2/dev1") && l.Contains("128 MiB"));
        Assert.Contains("left out at 80 columns: kind, group, frag, exports, imports, queue, util, done, failed, resets", string.Join(" ", lines.Select(l => l.Trim())));
        Assert.Contains("--json", text.ToString());
    }

    [Fact]
    public void On_a_wide_terminal_the_devices_table_has_every_column()
    {
        var (console, text) = Terminal(200);

        InspectCommands.WriteDevices(console, [Device("n1", 0, 0)]);

        output.WriteLine(text.ToString());
        foreach (var column in new[] { "group", "frag", "exports", "imports", "failed", "resets" }) Assert.Contains(column, text.ToString());
        Assert.Contains("123456", text.ToString());
        Assert.DoesNotContain("left out", text.ToString());
    }
}
