using System.Collections.Immutable;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Core.Gateway;

/// <summary>
/// <c>GET /nodes</c>: the members as node <paramref name="Self"/> sees them, and the nodes removed from the cluster in
/// the last minutes (the latest first), as <c>ray status</c> keeps its dead nodes.
/// </summary>
[MessagePackObject]
[Manifest("NodeRegistry.NodeList")]
public sealed record NodeList(
    [property: Key(0)] string Self,
    [property: Key(1)] ImmutableArray<NodeStatus> Nodes,
    [property: Key(2)] ImmutableArray<RemovedNode> Removed) : IFabricMessage;

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
