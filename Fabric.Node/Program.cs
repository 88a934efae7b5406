using System.CommandLine;
using Fabric.Node.Cli;

// A mistake the commands did not foresee still ends in one sentence, not a stack trace (FABRIC_TRACE=1 shows it).
var parse = FabricCli.Build().Parse(args);
try
{
    return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is not OperationCanceledException && Environment.GetEnvironmentVariable("FABRIC_TRACE") != "1")
{
    await Console.Error.WriteLineAsync($"fabric: {e.GetType().Name}: {e.Message}");
    return 1;
}
