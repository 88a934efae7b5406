using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core.Gateway;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Node.Cluster;

/// <summary>
/// The cluster-wide device inventory (the sysfs / INFO idea): every node's devices and their counters, readable
/// from any node without opening anything, kept current as nodes join, leave and die. Each node's registry
/// publishes its own devices to every other registry once a second and on join; a node that becomes unreachable
/// is left out at once, and forgotten once removed.
/// </summary>
public static class NodeRegistry
{
    public const string Name = "registry";

    public static Props Props(string node, IActorRef manager, TimeSpan publishEvery) =>
        Akka.Actor.Props.Create(() => new NodeRegistryActor(node, manager, publishEvery));

    /// <summary>
    /// Between registries: one node's devices as of now, and the URL of its HTTP gateway (null: it has none, or runs a
    /// build from before gateways were published). No reply.
    /// </summary>
    [MessagePackObject]
    [Manifest("NodeRegistry.NodeSnapshot")]
    public sealed record NodeSnapshot(
        [property: Key(0)] string Node,
        [property: Key(1)] IActorRef Manager,
        [property: Key(2)] ImmutableArray<DeviceInfo> Devices,
        [property: Key(3)] string? Gateway = null) : IFabricMessage;

    /// <summary>
    /// From the node's own HTTP gateway once it listens: the URL others reach it at. Published with the node's devices, so
    /// that a client following a job through one gateway learns the others from <c>GET /nodes</c>. No reply.
    /// </summary>
    public sealed record UseGateway(string Url);

    /// <summary>
    /// Published on this node's event stream when the registry stops counting a node (unreachable, or removed): its name
    /// and address, so that clients on this node fail requests for its devices at once, by name.
    /// </summary>
    public sealed record NodeLost(string Node, Address Address);

    /// <summary>Published on this node's event stream when a node counts again (reachable again, or a new incarnation published its devices).</summary>
    public sealed record NodeAvailable(string Node, Address Address);

    /// <summary>Every node known to this one → <see cref="NodeList"/>.</summary>
    [MessagePackObject]
    [Manifest("NodeRegistry.GetNodes")]
    public sealed record GetNodes : IFabricMessage;

    /// <summary>How long <see cref="NodeList.Removed"/> keeps a removed node.</summary>
    public static readonly TimeSpan RemovedRetention = TimeSpan.FromMinutes(10);

    /// <summary>The most removed nodes <see cref="NodeList.Removed"/> keeps (the oldest go first).</summary>
    public const int MaxRemoved = 64;
}
