using System.CommandLine;
using Fabric.Node.Bench;
using Fabric.Node.Demo;
using Spectre.Console;

namespace Fabric.Node.Cli;

/// <summary>The <c>fabric</c> command line: every subcommand, its options and its help text.</summary>
public static class FabricCli
{
    public static RootCommand Build()
    {
        var root = new RootCommand(
            "Fabric: emulated accelerator devices (device memory, address spaces, command queues, fences, dma-buf " +
            "export/import) as Akka.NET actors.");
        root.Subcommands.Add(DemoCommand());
        root.Subcommands.Add(NodeCommand.Build());
        root.Subcommands.Add(InspectCommands.Devices());
        root.Subcommands.Add(InspectCommands.Nodes());
        root.Subcommands.Add(CheckCommand.Build());
        root.Subcommands.Add(BenchCommand());
        return root;
    }

    private static Command DemoCommand()
    {
        var demo = new Command("demo",
            "Runs a readable end-to-end scenario in this process: two devices, kernels on both, a buffer exported on one " +
            "and imported on the other, results checked against the host, memory shown back at zero. Exits 0 when every check passes.");
        demo.SetAction((_, cancel) => LocalDemo.RunAsync(AnsiConsole.Console, cancel));
        return demo;
    }

    private static Command BenchCommand()
    {
        var bench = new Command("bench", "Measures Fabric and prints one JSON line per figure on stdout (progress goes to stderr).");
        var quick = new Option<bool>("--quick") { Description = "A shorter run (under a minute) with smaller sizes." };
        var local = new Command("local",
            "One device in this process: submit→fence latency p50/p99, pipelined submissions per second, fill and copy GB/s " +
            "against memcpy of the same size.");
        local.Options.Add(quick);
        local.SetAction(async (parse, cancel) =>
        {
            var lines = await LocalBench.RunAsync(new LocalBench.Options(parse.GetValue(quick)), Console.Error.WriteLine, cancel);
            foreach (var line in lines) Console.Out.WriteLine(line.ToJson());
            return 0;
        });
        bench.Subcommands.Add(local);

        var remoteQuick = new Option<bool>("--quick") { Description = "A shorter run (under a minute)." };
        var remote = new Command("remote",
            "Starts one node process and measures from this client process: remote submit→fence latency p50/p99 against a " +
            "plain Akka request/reply between the same processes, and pipelined remote submissions per second against plain " +
            "one-way Akka messages per second.");
        remote.Options.Add(remoteQuick);
        remote.SetAction(async (parse, cancel) =>
        {
            var lines = await RemoteBench.RunAsync(new RemoteBench.Options(parse.GetValue(remoteQuick)), Console.Error.WriteLine, cancel);
            foreach (var line in lines) Console.Out.WriteLine(line.ToJson());
            return 0;
        });
        bench.Subcommands.Add(remote);
        return bench;
    }
}
