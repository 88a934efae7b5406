using Fabric.Node.Cli;

return await FabricCli.Build().Parse(args).InvokeAsync();
