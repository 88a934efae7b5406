using System.CommandLine;
using System.Text.Json;
using Fabric.Node.Gateway;
using Fabric.Node.Jobs;

namespace Fabric.Node.Cli;

/// <summary>
/// <c>fabric health</c>: whether one node is ready — Up in the cluster with its job region answering — from its
/// gateway's <c>/health</c>. For scripts and container health checks: exit 0 when ready, 1 otherwise.
/// </summary>
public static class HealthCommand
{
    public static Command Build()
    {
        var gateway = Gateways.Option();
        var json = new Option<bool>("--json") { Description = "Print the node's /health answer as JSON." };
        var command = new Command("health",
            "Says whether the node behind the (first) gateway is ready: Up in the cluster and its job region answering. Exit 0 when it is, " +
            "1 when it is not or does not answer (a health check for scripts and containers; it asks that one node only).");
        command.Options.Add(gateway);
        command.Options.Add(json);
        command.SetAction((parse, cancel) => Gateways.RunAsync("health", parse.GetValue(gateway), async gateways =>
        {
            var health = await gateways.Current.HealthAsync(cancel);
            var ready = health.Status == "Up" && health.Jobs == JobsReadiness.Ready;
            Console.Out.WriteLine(parse.GetValue(json) ? JsonSerializer.Serialize(health, HttpGateway.Json)
                : $"{health.Node} is {health.Status}{(ready ? "" : " and not ready")}: {health.UpMembers} of {health.Members} member(s) up, jobs {health.Jobs}");
            return ready ? 0 : 1;
        }));
        return command;
    }
}
