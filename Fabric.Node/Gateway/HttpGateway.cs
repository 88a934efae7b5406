using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using Fabric.Core.Protocol;
using Fabric.Node.Cluster;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Fabric.Node.Gateway;

/// <summary>
/// The node's HTTP gateway (loopback by default): <c>GET /health</c>, <c>GET /nodes</c>, <c>GET /devices</c>, all
/// JSON, all answered from the cluster-wide registry without opening any device. The CLI reads these.
/// </summary>
public static class HttpGateway
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        WriteIndented = false,
    };

    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    public static void Map(WebApplication app, NodeOptions options)
    {
        app.MapGet("/health", async (ActorRegistry actors) =>
        {
            var cluster = Akka.Cluster.Cluster.Get(app.Services.GetRequiredService<ActorSystem>());
            var nodes = await actors.Get<NodeRegistryKey>().Ask<NodeRegistry.NodeList>(new NodeRegistry.GetNodes(), AskTimeout);
            var status = cluster.SelfMember.Status;
            var body = new Health(options.Name, cluster.SelfAddress.ToString(), status.ToString(),
                nodes.Nodes.Count(n => n.Status == nameof(MemberStatus.Up) && n.Reachable), nodes.Nodes.Length);
            return Results.Json(body, Json, statusCode: status == MemberStatus.Up ? 200 : 503);
        });
        app.MapGet("/nodes", async (ActorRegistry actors) =>
            Results.Json(await actors.Get<NodeRegistryKey>().Ask<NodeRegistry.NodeList>(new NodeRegistry.GetNodes(), AskTimeout), Json));
        app.MapGet("/devices", async (ActorRegistry actors) =>
            Results.Json((await actors.Get<NodeRegistryKey>().Ask<DeviceRequests.DeviceList>(new DeviceRequests.ListDevices(), AskTimeout)).Devices, Json));
    }

    /// <summary>The body of <c>GET /health</c>: 200 once the node is Up in the cluster, 503 before.</summary>
    public sealed record Health(string Node, string Address, string Status, int UpMembers, int Members);
}

/// <summary>The key of the node's registry in Akka.Hosting's actor registry.</summary>
public sealed class NodeRegistryKey;

/// <summary>The key of the node's device manager in Akka.Hosting's actor registry.</summary>
public sealed class DeviceManagerKey;
