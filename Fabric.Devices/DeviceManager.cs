using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Serialization;
using Fabric.Devices.DataPlane;
using MessagePack;

namespace Fabric.Devices;

/// <summary>
/// The node's device manager: creates the devices of its profiles, routes requests by device id, answers
/// enumeration without opening anything, and arbitrates IOMMU group ownership between contexts.
/// It answers the client requests of <see cref="Core.Protocol.DeviceRequests"/>.
/// </summary>
public static class DeviceManager
{
    public static Props Props(string node, IReadOnlyList<DeviceProfile> profiles, FabricDataPlane? dataPlane = null, FaultPlan? faults = null)
    {
        if (string.IsNullOrWhiteSpace(node) || node.Contains('/'))
            throw new ArgumentException($"a node name must be non-empty and without '/', not '{node}'", nameof(node));
        if (profiles.Count == 0) throw new ArgumentException("a node needs at least one device profile", nameof(profiles));
        foreach (var profile in profiles) profile.Validate();
        return Akka.Actor.Props.Create(() => new DeviceManagerActor(node, profiles.ToImmutableArray(), dataPlane, faults));
    }

    /// <summary>
    /// From a context: attach its device to an address space, which needs the device's IOMMU group. Fails with
    /// EBUSY when another device of the group is attached (by another context). The claim lasts until
    /// <see cref="ReleaseGroup"/> or until the address space actor stops. Answered with <see cref="GroupClaimResult"/>.
    /// </summary>
    internal sealed record ClaimGroup(
        int Group, DeviceId Device, string Claimant, AddressSpaceId Space, IActorRef SpaceActor, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    internal sealed record GroupClaimResult(AddressSpaceId Space, FabricError? Error, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>From a context: the address space is detached; no reply.</summary>
    internal sealed record ReleaseGroup(IActorRef SpaceActor) : INoSerializationVerificationNeeded;

    /// <summary>
    /// From the node's membership layer: the device managers of the other nodes, by node name, and the nodes that
    /// were members and are gone. Requests for their devices are forwarded there, or fail with ENODEV naming the node.
    /// </summary>
    public sealed record PeersChanged(ImmutableDictionary<string, IActorRef> Managers, ImmutableHashSet<string> Departed)
        : INoSerializationVerificationNeeded;

    /// <summary>From the node layer: answer <see cref="Core.Protocol.DeviceRequests.ListDevices"/> by forwarding it to
    /// <paramref name="Enumerator"/> (the cluster-wide registry) instead of listing only this node's devices.</summary>
    public sealed record UseEnumerator(IActorRef Enumerator) : INoSerializationVerificationNeeded;

    /// <summary>
    /// Removes a device of this node (hot-unplug, a driver's release): its work is aborted, its contexts are torn down
    /// and their clients told, and it then reads <see cref="Core.Protocol.DeviceStatus.Removed"/>. No reply.
    /// </summary>
    public sealed record RemoveDevice(DeviceId Device) : INoSerializationVerificationNeeded;

    /// <summary>Lists only this node's devices → <see cref="Core.Protocol.DeviceRequests.DeviceList"/> (what a registry collects).</summary>
    [MessagePackObject]
    [Manifest("DeviceManager.ListLocalDevices")]
    public sealed record ListLocalDevices : IFabricMessage;
}
