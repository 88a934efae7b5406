using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using Fabric.Core.Protocol;
using static Fabric.Core.Protocol.DeviceRequests;

namespace Fabric.Devices;

/// <summary>The actor behind <see cref="DeviceManager"/>: parent of the node's devices.</summary>
internal sealed class DeviceManagerActor : ReceiveActor
{
    private readonly string _node;
    private readonly ImmutableArray<IActorRef> _devices;
    private readonly ImmutableArray<int> _groups;
    private readonly Dictionary<int, GroupOwnership> _ownership = [];
    private ImmutableDictionary<string, IActorRef> _peers = ImmutableDictionary<string, IActorRef>.Empty;
    private ImmutableHashSet<string> _departed = [];
    private IActorRef? _enumerator;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private sealed record Claim(DeviceId Device, string Claimant, AddressSpaceId Space);

    /// <summary>The address spaces attached to devices of one group: all of them are of the same device.</summary>
    private sealed class GroupOwnership
    {
        public readonly Dictionary<IActorRef, Claim> Claims = [];
    }

    public DeviceManagerActor(string node, ImmutableArray<DeviceProfile> profiles, Fabric.Devices.DataPlane.FabricDataPlane? dataPlane)
    {
        _node = node;
        // A device without a group gets one of its own, numbered after every configured group.
        var nextGroup = Math.Max(0, profiles.Max(p => p.IommuGroup ?? -1) + 1);
        _groups = [.. profiles.Select(p => p.IommuGroup ?? nextGroup++)];
        _devices = [.. profiles.Select((profile, index) =>
        {
            var id = new DeviceId(node, index);
            return Context.ActorOf(Device.Props(id, profile, _groups[index], Self, dataPlane), $"dev-{index}");
        })];

        Receive<ListDevices>(m =>
        {
            if (_enumerator is not null) _enumerator.Forward(m);
            else ListLocal();
        });
        Receive<DeviceManager.ListLocalDevices>(_ => ListLocal());
        Receive<DeviceManager.PeersChanged>(m =>
        {
            _peers = m.Managers.Remove(_node);
            _departed = m.Departed;
        });
        Receive<DeviceManager.UseEnumerator>(m => _enumerator = m.Enumerator);
        Receive<GetDeviceInfo>(m => Route(m.Device, m));
        Receive<OpenDevice>(m => Route(m.Device, m));
        Receive<ResetDevice>(m => Route(m.Device, m));
        Receive<WaitFence>(m => Route(m.Fence.Device, m));
        Receive<WaitAnyFence>(OnWaitAny);
        Receive<DmaBufExport.Attach>(m => Route(m.Token.Export.Device, m, m.Importer,
            e => new ContextProtocol.AttachFailed(e, m.ReplyTo)));
        Receive<DmaBufExport.Revoke>(m => Route(m.Export.Device, m, m.ReplyTo, e => e));
        Receive<DeviceManager.ClaimGroup>(OnClaim);
        Receive<DeviceManager.ReleaseGroup>(m => ReleaseClaims(m.SpaceActor));
        Receive<SpaceGone>(m => ReleaseClaims(m.Space));
    }

    private sealed record SpaceGone(IActorRef Space);

    private void ListLocal()
    {
        var replyTo = Sender;
        Context.ActorOf(Akka.Actor.Props.Create(() => new ListDevicesAggregator(_devices, replyTo)));
    }

    private void Route(DeviceId device, object message) => Route(device, message, Sender, e => e);

    private void Route(DeviceId device, object message, IActorRef failTo, Func<FabricError, object> failure)
    {
        if (Lookup(device) is { } actor) actor.Forward(message);
        else if (device.Node != _node && _peers.TryGetValue(device.Node, out var peer)) peer.Forward(message);
        else failTo.Tell(failure(NoSuchDevice(device)));
    }

    private IActorRef? Lookup(DeviceId device) =>
        device.Node == _node && device.Index >= 0 && device.Index < _devices.Length ? _devices[device.Index] : null;

    private FabricError NoSuchDevice(DeviceId device) => new(ErrorCode.ENODEV,
        device.Node == _node
            ? $"there is no device {device}: node {_node} has {_devices.Length} devices ({_node}/dev0 to {_node}/dev{_devices.Length - 1})"
            : _departed.Contains(device.Node)
                ? $"device {device} is gone: its node {device.Node} left the cluster or was lost"
                : $"device {device} is on node {device.Node}, which is not a member of this cluster (members: {string.Join(", ", _peers.Keys.Append(_node).Order())})");

    private void OnWaitAny(WaitAnyFence m)
    {
        if (m.Fences.IsDefaultOrEmpty)
        {
            Sender.Tell(FabricError.Invalid("a multi-wait needs at least one fence"));
            return;
        }
        var device = m.Fences[0].Device;
        if (m.Fences.Any(f => f.Device != device))
        {
            Sender.Tell(FabricError.Invalid(
                $"a multi-wait takes fences of one device; got {string.Join(", ", m.Fences.Select(f => f.Device).Distinct())}"));
            return;
        }
        Route(device, m);
    }

    private void OnClaim(DeviceManager.ClaimGroup m)
    {
        if (!_ownership.TryGetValue(m.Group, out var ownership)) _ownership[m.Group] = ownership = new GroupOwnership();
        var other = ownership.Claims.Values.FirstOrDefault(c => c.Device != m.Device);
        if (other is not null)
        {
            m.ReplyTo.Tell(new DeviceManager.GroupClaimResult(m.Space, new FabricError(ErrorCode.EBUSY,
                $"cannot attach {m.Device} to {m.Claimant}: {other.Device} in the same IOMMU group {m.Group} is attached to {other.Claimant}"),
                m.ReplyTo));
            return;
        }
        ownership.Claims[m.SpaceActor] = new Claim(m.Device, m.Claimant, m.Space);
        Context.WatchWith(m.SpaceActor, new SpaceGone(m.SpaceActor));
        m.ReplyTo.Tell(new DeviceManager.GroupClaimResult(m.Space, null, m.ReplyTo));
    }

    private void ReleaseClaims(IActorRef space)
    {
        foreach (var (group, ownership) in _ownership)
            if (ownership.Claims.Remove(space, out var claim))
                _log.Debug("released IOMMU group {0} held by {1}", group, claim.Claimant);
        Context.Unwatch(space);
    }

    /// <summary>Collects every device's info for one <see cref="ListDevices"/>; a device that does not answer in time is left out.</summary>
    private sealed class ListDevicesAggregator : ReceiveActor, IWithTimers
    {
        private readonly List<DeviceInfo> _infos = [];

        public ListDevicesAggregator(ImmutableArray<IActorRef> devices, IActorRef replyTo)
        {
            var expected = devices.Length;
            foreach (var device in devices) device.Tell(new GetDeviceInfo(default));
            Timers.StartSingleTimer("deadline", ReceiveTimeout.Instance, TimeSpan.FromSeconds(5));
            Receive<DeviceInfo>(info =>
            {
                _infos.Add(info);
                if (_infos.Count == expected) Finish(replyTo);
            });
            Receive<ReceiveTimeout>(_ => Finish(replyTo));
        }

        public ITimerScheduler Timers { get; set; } = null!;

        private void Finish(IActorRef replyTo)
        {
            replyTo.Tell(new DeviceList([.. _infos.OrderBy(i => i.Id.Index)]));
            Context.Stop(Self);
        }
    }
}
