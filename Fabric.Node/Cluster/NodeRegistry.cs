using System.Collections.Immutable;
using Akka.Actor;
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

    /// <summary>
    /// The members, and the nodes removed from the cluster in the last <see cref="RemovedRetention"/> (at most
    /// <see cref="MaxRemoved"/>, the latest first), as <c>ray status</c> keeps its dead nodes.
    /// </summary>
    [MessagePackObject]
    [Manifest("NodeRegistry.NodeList")]
    public sealed record NodeList(
        [property: Key(0)] string Self,
        [property: Key(1)] ImmutableArray<NodeStatus> Nodes,
        [property: Key(2)] ImmutableArray<RemovedNode> Removed) : IFabricMessage;

    /// <summary>How long <see cref="NodeList.Removed"/> keeps a removed node.</summary>
    public static readonly TimeSpan RemovedRetention = TimeSpan.FromMinutes(10);

    /// <summary>The most removed nodes <see cref="NodeList.Removed"/> keeps (the oldest go first).</summary>
    public const int MaxRemoved = 64;

    /// <summary>
    /// A node removed from the cluster: its name (empty if it never published), address, why — <c>downed</c> (it
    /// stopped answering, or its process was gone, and the cluster's split-brain resolver removed it) or <c>left</c>
    /// (it stopped gracefully) — and when this node saw it removed (Unix ms).
    /// </summary>
    [MessagePackObject]
    [Manifest("NodeRegistry.RemovedNode")]
    public sealed record RemovedNode(
        [property: Key(0)] string Node,
        [property: Key(1)] string Address,
        [property: Key(2)] string Reason,
        [property: Key(3)] long AtMs) : IFabricMessage;

    /// <summary>
    /// A member as this node sees it; <paramref name="Node"/> is empty until it has published, <paramref name="Gateway"/>
    /// null while its HTTP gateway is unknown (or it has none).
    /// </summary>
    [MessagePackObject]
    [Manifest("NodeRegistry.NodeStatus")]
    public sealed record NodeStatus(
        [property: Key(0)] string Node,
        [property: Key(1)] string Address,
        [property: Key(2)] string Status,
        [property: Key(3)] bool Reachable,
        [property: Key(4)] int Devices,
        [property: Key(5)] string? Gateway = null) : IFabricMessage;
}
