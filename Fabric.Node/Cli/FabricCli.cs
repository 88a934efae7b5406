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
        root.Subcommands.Add(HealthCommand.Build());
        root.Subcommands.Add(CheckCommand.Build());
        root.Subcommands.Add(JobCommands.Submit());
        root.Subcommands.Add(JobCommands.Jobs());
        root.Subcommands.Add(JobCommands.Job());
        root.Subcommands.Add(TopCommand.Build());
        root.Subcommands.Add(ChaosCommand.Build());
        root.Subcommands.Add(CertsCommand.Build());
        root.Subcommands.Add(BenchCommand());
        return root;
    }

    private static Command DemoCommand()
    {
        var inProcess = new Option<bool>("--in-process")
        {
            Description = "Instead: a quick tour in this one process — two devices, kernels on both, a buffer exported on one and " +
                          "imported on the other, results checked against the host, memory shown back at zero.",
        };
        var demo = new Command("demo",
            "The whole story in under a minute, with nothing to install: starts a 3-node cluster on this machine (SQLite journal), " +
            "shows the devices, runs a job whose stages share buffers P2P between nodes, SIGKILLs a node mid-job, shows the job " +
            "recover and finish with a result equal to the host reference and zero leaked device memory, restarts the node and " +
            "shuts everything down. Exits 0 when every check passes.");
        demo.Options.Add(inProcess);
        demo.SetAction((parse, cancel) => parse.GetValue(inProcess)
            ? LocalDemo.RunAsync(InspectCommands.WideConsole(), cancel)
            : ClusterDemo.RunAsync(InspectCommands.WideConsole(), cancel));
        return demo;
    }

    private static Command BenchCommand()
    {
        var bench = new Command("bench", "Measures Fabric and prints one JSON line per figure on stdout (progress goes to stderr).");
        bench.Subcommands.Add(BenchSuite("local",
            "One device in this process: submit→fence latency p50/p99, pipelined submissions per second, fill and copy GB/s " +
            "against memcpy of the same size.",
            (quick, cancel) => LocalBench.RunAsync(new LocalBench.Options(quick), Console.Error.WriteLine, cancel)));
        bench.Subcommands.Add(BenchSuite("remote",
            "Starts one node process and measures from this client process: remote submit→fence latency p50/p99 against a " +
            "plain Akka request/reply between the same processes, and pipelined remote submissions per second against plain " +
            "one-way Akka messages per second.",
            (quick, cancel) => RemoteBench.RunAsync(new RemoteBench.Options(quick), Console.Error.WriteLine, cancel)));
        bench.Subcommands.Add(BenchSuite("p2p",
            "Starts two node processes: 1 GiB copied from a device of one to a device of the other over the data plane, against " +
            "raw TCP between the same processes with the same chunk size; 4 KiB remote read latency p50/p99; peak RSS growth of " +
            "both processes during the transfer.",
            (quick, cancel) => P2PBench.RunAsync(new P2PBench.Options(quick), Console.Error.WriteLine, cancel)));
        bench.Subcommands.Add(BenchSuite("jobs",
            "Starts three node processes (on TLS, as nodes run by default): tasks per second of a wide job of 10 000 tiny tasks, and the cost per task over " +
            "submitting the same command buffer directly; then the time from SIGKILL of a node running tasks to the completion " +
            "of a task placed again, and from SIGKILL of the job's own node to the first task its recovered run completes.",
            (quick, cancel) => JobsBench.RunAsync(new JobsBench.Options(quick), Console.Error.WriteLine, cancel)));
        return bench;
    }

    /// <summary>A benchmark suite: JSON lines on stdout, exit 1 (with the reason on stderr) when it could not measure.</summary>
    private static Command BenchSuite(string name, string description, Func<bool, CancellationToken, Task<IReadOnlyList<BenchLine>>> run)
    {
        var quick = new Option<bool>("--quick") { Description = "A shorter run (under a minute) with smaller sizes." };
        var command = new Command(name, description);
        command.Options.Add(quick);
        command.SetAction(async (parse, cancel) =>
        {
            // Only the figures go to stdout: anything else written meanwhile (Akka's own log lines) goes to stderr.
            var stdout = Console.Out;
            Console.SetOut(Console.Error);
            IReadOnlyList<BenchLine> lines;
            try
            {
                lines = await run(parse.GetValue(quick), cancel);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                await Console.Error.WriteLineAsync($"fabric bench {name}: could not measure: {e.Message}");
                return 1;
            }
            finally
            {
                Console.SetOut(stdout);
            }
            foreach (var line in lines) stdout.WriteLine(line.ToJson());
            return 0;
        });
        return command;
    }
}
