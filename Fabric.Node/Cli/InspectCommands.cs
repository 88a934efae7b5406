using System.CommandLine;
using System.Text.Json;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Fabric.Node.Cluster;
using Fabric.Node.Gateway;
using Spectre.Console;

namespace Fabric.Node.Cli;

/// <summary><c>fabric devices</c> and <c>fabric nodes</c>: the cluster as a node's gateway sees it, opening nothing.</summary>
public static class InspectCommands
{
    private static Option<bool> JsonOption() => new("--json") { Description = "Print JSON instead of a table." };

    public static Command Devices()
    {
        var gateway = Gateways.Option();
        var json = JsonOption();
        var command = new Command("devices", "Lists every device of the cluster with memory, contexts, exports, queue depth, utilization and error counters — without opening any.");
        command.Options.Add(gateway);
        command.Options.Add(json);
        command.SetAction((parse, cancel) => Gateways.RunAsync("devices", parse.GetValue(gateway), async gateways =>
        {
            var devices = await gateways.AskAsync((c, t) => c.DevicesAsync(t), GatewaySet.ReadPatience, cancel);
            if (parse.GetValue(json)) System.Console.Out.WriteLine(JsonSerializer.Serialize(devices, HttpGateway.Json));
            else WriteDevices(WideConsole(), devices);
            return 0;
        }));
        return command;
    }

    public static Command Nodes()
    {
        var gateway = Gateways.Option();
        var json = JsonOption();
        var command = new Command("nodes", "Lists the cluster's members as one node sees them: name, address, status, reachability, devices; then the nodes removed in the last " +
            $"{NodeRegistry.RemovedRetention.TotalMinutes:0} minutes and why (downed: lost and removed by the cluster; left: stopped gracefully).");
        command.Options.Add(gateway);
        command.Options.Add(json);
        command.SetAction((parse, cancel) => Gateways.RunAsync("nodes", parse.GetValue(gateway), async gateways =>
        {
            var nodes = await gateways.AskAsync((c, t) => c.NodesAsync(t), GatewaySet.ReadPatience, cancel);
            if (parse.GetValue(json)) { System.Console.Out.WriteLine(JsonSerializer.Serialize(nodes, HttpGateway.Json)); return 0; }
            var table = new FitTable(new("node"), new("address", 1), new("gateway", 2), new("status"), new("reachable"), new("devices"));
            foreach (var n in nodes.Nodes)
                table.AddRow(Markup.Escape(n.Node == nodes.Self ? $"{n.Node} (this)" : n.Node), Markup.Escape(n.Address), Markup.Escape(n.Gateway ?? ""),
                    n.Status, n.Reachable ? "yes" : "[red]no[/]", n.Devices.ToString());
            var console = WideConsole();
            table.Write(console);
            if (!nodes.Removed.IsDefaultOrEmpty) WriteRemoved(console, nodes.Removed, DateTimeOffset.UtcNow);
            return 0;
        }));
        return command;
    }

    /// <summary>The nodes removed in the last minutes: name, address, why (downed or left) and how long ago.</summary>
    public static void WriteRemoved(IAnsiConsole console, IReadOnlyList<RemovedNode> removed, DateTimeOffset now)
    {
        var table = new FitTable(new("removed node"), new("address", 1), new("why"), new("when"))
        {
            Caption = $"[grey]removed in the last {NodeRegistry.RemovedRetention.TotalMinutes:0} min[/]",
        };
        foreach (var r in removed)
        {
            var ago = now - DateTimeOffset.FromUnixTimeMilliseconds(r.AtMs);
            var when = ago < TimeSpan.FromMinutes(1) ? $"{Math.Max(0, ago.TotalSeconds):0} s ago" : $"{ago.TotalMinutes:0} min ago";
            table.AddRow(Markup.Escape(r.Node), Markup.Escape(r.Address), r.Reason == "downed" ? "[red]downed[/]" : r.Reason, when);
        }
        table.Write(console);
    }

    public static void WriteDevices(IAnsiConsole console, IReadOnlyList<DeviceInfo> devices)
    {
        // On a narrow terminal the figures one looks at first stay: the device, its status, memory, contexts, utilization.
        var table = new FitTable(new("device"), new("status"), new("kind", 3), new("group", 4), new("memory used"), new("total"), new("frag", 4),
            new("contexts", 1), new("exports", 3), new("imports", 3), new("queue", 2), new("util", 1), new("done", 2), new("failed", 2), new("resets", 4));
        foreach (var d in devices)
            table.AddRow(Markup.Escape(d.Id.ToString()), StatusOf(d), Markup.Escape(d.Kind), d.IommuGroup.ToString(), Size(d.MemoryUsed), Size(d.MemoryTotal),
                $"{d.Fragmentation:P0}", d.OpenContexts.ToString(), d.Exports.ToString(), d.Imports.ToString(), d.QueueDepth.ToString(), $"{d.Utilization:P0}",
                d.CompletedSubmissions.ToString(), d.FailedSubmissions.ToString(), d.Resets.ToString());
        table.Write(console);
    }

    /// <summary>The device's status as a table cell; a failed device shows why.</summary>
    private static string StatusOf(DeviceInfo d) => d.Status switch
    {
        DeviceStatus.Operational => "ok",
        DeviceStatus.InReset => "[yellow]in reset[/]",
        DeviceStatus.Malfunction => $"[red]failed[/] {Markup.Escape(d.Failure ?? "")}",
        _ => "[grey]removed[/]",
    };

    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.##} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.##} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:0.##} KiB",
        _ => $"{bytes} B",
    };

    /// <summary>A console that stays wide when the output is a pipe or a file.</summary>
    public static IAnsiConsole WideConsole()
    {
        var console = AnsiConsole.Console;
        if (System.Console.IsOutputRedirected) console.Profile.Width = 1000; // piped: each row on one line, whole, for grep and scripts
        return console;
    }
}
