using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using Fabric.Core.Protocol;
using static Fabric.Core.Protocol.DeviceRequests;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="DeviceManager"/>: parent of the node's devices. A device that throws is stopped, not
/// restarted (its memory would look allocated in a fresh instance); it then reads Malfunction — a removed one
/// Removed — and every request for it answers ENODEV naming why.
/// </summary>
internal sealed class DeviceManagerActor : ReceiveActor
{
    private readonly string _node;
    private readonly ImmutableArray<IActorRef> _devices;
    private readonly ImmutableArray<DeviceProfile> _profiles;
    private readonly Dictionary<int, DeviceInfo> _stopped = [];
    private readonly Dictionary<int, string> _failures = [];
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

    public DeviceManagerActor(string node, ImmutableArray<DeviceProfile> profiles, Fabric.Devices.DataPlane.FabricDataPlane? dataPlane,
        FaultPlan? faults)
    {
        _node = node;
        _profiles = profiles;
        // A device without a group gets one of its own, numbered after every configured group.
        var nextGroup = Math.Max(0, profiles.Max(p => p.IommuGroup ?? -1) + 1);
        _groups = [.. profiles.Select(p => p.IommuGroup ?? nextGroup++)];
        _devices = [.. profiles.Select((profile, index) =>
        {
            var id = new DeviceId(node, index);
            var device = Context.ActorOf(Device.Props(id, profile, _groups[index], Self, dataPlane, faults), $"dev-{index}");
            Context.WatchWith(device, new DeviceStopped(index));
            return device;
        })];
        Receive<DeviceStopped>(OnDeviceStopped);
        Receive<Device.Retired>(m =>
        {
            if (_stopped.ContainsKey(m.Index)) return;
            OnDeviceStopped(new DeviceStopped(m.Index));
            _devices[m.Index].Tell(PoisonPill.Instance); // after what was forwarded to it already, which it still answers
        });
        Receive<DeviceManager.RemoveDevice>(m => { if (Lookup(m.Device) is { } device) device.Tell(new Device.Remove()); });
        Receive<CancelWait>(m => Route(m.Device, m, ActorRefs.Nobody, e => e));
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
        Receive<GetDeviceInfo>(m =>
        {
            if (m.Device.Node == _node && _stopped.TryGetValue(m.Device.Index, out var info)) Sender.Tell(info);
            else Route(m.Device, m);
        });
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
    private sealed record DeviceStopped(int Index);

    /// <summary>A device that throws is stopped, never restarted; the reason is kept for its info and for requests to it.</summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new StopOnFailure(_log, $"node {_node}", (child, e) =>
        {
            var index = _devices.IndexOf(child);
            if (index < 0) return;
            _failures[index] = $"{e.GetType().Name}: {e.Message}";
            // Stopped from now on, not only once its Terminated comes: a request routed to it meanwhile would be lost
            // with its mailbox (the caller timing out) instead of answered Malfunction or ENODEV.
            OnDeviceStopped(new DeviceStopped(index));
        });

    private void OnDeviceStopped(DeviceStopped m)
    {
        var id = new DeviceId(_node, m.Index);
        var profile = _profiles[m.Index];
        var failure = _failures.GetValueOrDefault(m.Index);
        _stopped[m.Index] = new DeviceInfo(id, profile.Kind, _groups[m.Index], profile.PageSize, profile.Queues, profile.MemoryBytes,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, false, 0, 0, failure is null ? DeviceStatus.Removed : DeviceStatus.Malfunction, failure);
        foreach (var ownership in _ownership.Values)
            foreach (var (space, _) in ownership.Claims.Where(c => c.Value.Device == id).ToList()) ReleaseClaims(space);
    }

    private void ListLocal()
    {
        var replyTo = Sender;
        var live = _devices.Where((_, index) => !_stopped.ContainsKey(index)).ToImmutableArray();
        var stopped = _stopped.Values.ToImmutableArray();
        Context.ActorOf(Akka.Actor.Props.Create(() => new ListDevicesAggregator(live, stopped, replyTo)));
    }

    private void Route(DeviceId device, object message) => Route(device, message, Sender, e => e);

    private void Route(DeviceId device, object message, IActorRef failTo, Func<FabricError, object> failure)
    {
        if (Lookup(device) is { } actor) actor.Forward(message);
        else if (device.Node != _node && _peers.TryGetValue(device.Node, out var peer)) peer.Forward(message);
        else failTo.Tell(failure(NoSuchDevice(device)));
    }

    private IActorRef? Lookup(DeviceId device) =>
        device.Node == _node && device.Index >= 0 && device.Index < _devices.Length && !_stopped.ContainsKey(device.Index) ? _devices[device.Index] : null;

    private FabricError NoSuchDevice(DeviceId device) => new(ErrorCode.ENODEV,
        device.Node == _node && _stopped.TryGetValue(device.Index, out var stopped)
            ? stopped.Failure is { } failure ? $"{device} failed ({failure}) and was stopped; it reads Malfunction" : $"{device} was removed"
        : device.Node == _node
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
        if (m.Fences.Length > MaxWaitFences)
        {
            Sender.Tell(FabricError.Invalid($"a multi-wait takes at most {MaxWaitFences} fences, not {m.Fences.Length}"));
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

        public ListDevicesAggregator(ImmutableArray<IActorRef> devices, ImmutableArray<DeviceInfo> stopped, IActorRef replyTo)
        {
            _infos.AddRange(stopped);
            var expected = devices.Length + stopped.Length;
            if (expected == _infos.Count) Self.Tell(ReceiveTimeout.Instance);
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
