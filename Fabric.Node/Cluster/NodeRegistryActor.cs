using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Remote;
using Fabric.Core.Client;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Fabric.Devices;
using static Fabric.Node.Cluster.NodeRegistry;

namespace Fabric.Node.Cluster;

/// <summary>The actor behind <see cref="NodeRegistry"/>.</summary>
internal sealed class NodeRegistryActor : ReceiveActor, IWithTimers
{
    private readonly string _node;
    private readonly IActorRef _manager;
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly Dictionary<Address, Member> _members = [];
    private readonly HashSet<Address> _unreachable = [];
    // Members whose process is gone (their port refused after their connection closed: see PortProbe), before the
    // failure detector says so; until they are removed, or a new incarnation at the address publishes its devices.
    private readonly HashSet<Address> _gone = [];
    private readonly Dictionary<Address, UniqueAddress> _probing = []; // the incarnation each probe is about
    private readonly Dictionary<Address, NodeSnapshot> _snapshots = [];
    private readonly HashSet<string> _departed = [];
    private readonly LinkedList<RemovedNode> _removed = []; // the latest first
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private NodeSnapshot? _own;
    private string? _gateway;

    private sealed record Publish;

    public NodeRegistryActor(string node, IActorRef manager, TimeSpan publishEvery)
    {
        _node = node;
        _manager = manager;

        Receive<Publish>(_ => _manager.Tell(new DeviceManager.ListLocalDevices()));
        Receive<DeviceRequests.DeviceList>(OnOwnDevices);
        Receive<UseGateway>(m => _gateway = m.Url); // published with the next snapshot
        Receive<NodeSnapshot>(OnSnapshot);
        Receive<DeviceRequests.ListDevices>(_ => Sender.Tell(new DeviceRequests.DeviceList([.. AllDevices()])));
        Receive<GetNodes>(_ => Sender.Tell(Nodes()));
        Receive<ClusterEvent.MemberUp>(m => OnMember(m.Member));
        Receive<ClusterEvent.MemberJoined>(m => OnMember(m.Member));
        Receive<ClusterEvent.MemberWeaklyUp>(m => OnMember(m.Member));
        Receive<ClusterEvent.MemberLeft>(m => OnMember(m.Member));
        Receive<ClusterEvent.MemberExited>(m => OnMember(m.Member));
        Receive<ClusterEvent.MemberDowned>(m => OnMember(m.Member));
        Receive<ClusterEvent.MemberRemoved>(m => OnRemoved(m.Member, m.PreviousStatus));
        Receive<ClusterEvent.UnreachableMember>(m =>
        {
            _unreachable.Add(m.Member.Address);
            if (!_gone.Contains(m.Member.Address) && _snapshots.TryGetValue(m.Member.Address, out var snapshot))
                Announce(new NodeRegistry.NodeLost(snapshot.Node, m.Member.Address));
            PeersChanged();
        });
        Receive<ClusterEvent.ReachableMember>(m =>
        {
            _unreachable.Remove(m.Member.Address);
            _gone.Remove(m.Member.Address); // heard from again: not gone after all
            if (_snapshots.TryGetValue(m.Member.Address, out var snapshot)) Announce(new NodeRegistry.NodeAvailable(snapshot.Node, m.Member.Address));
            PeersChanged();
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<DisassociatedEvent>(m =>
        {
            if (_snapshots.ContainsKey(m.RemoteAddress) && !Unavailable(m.RemoteAddress) && _members.TryGetValue(m.RemoteAddress, out var member)
                && _probing.TryAdd(m.RemoteAddress, member.UniqueAddress))
                PortProbe.Start(m.RemoteAddress, Self);
        });
        Receive<PortProbe.Answered>(m =>
        {
            _probing.Remove(m.Address, out var probed);
            if (!m.Refused || !_snapshots.TryGetValue(m.Address, out var snapshot) || Unavailable(m.Address)) return;
            _gone.Add(m.Address);
            _log.Info("node {0} at {1}: {2}", snapshot.Node, m.Address, PortProbe.Reason);
            Announce(new NodeRegistry.NodeLost(snapshot.Node, m.Address));
            PeersChanged();
            // Nothing listens where it did: its process is gone, so it is downed now rather than after the failure
            // detector's silence and the split-brain resolver's stable-after (about 6 s): its jobs move, and a new
            // incarnation at its address joins, that much sooner. Only the incarnation probed, never a newer one, and
            // not one leaving on its own (it ends as left).
            if (_members.TryGetValue(m.Address, out var member) && member.UniqueAddress.Equals(probed) && member.Status is MemberStatus.Up or MemberStatus.WeaklyUp)
                _cluster.Down(m.Address);
        });

        Timers.StartPeriodicTimer("publish", new Publish(), TimeSpan.Zero, publishEvery);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        _manager.Tell(new DeviceManager.UseEnumerator(Self));
        Context.System.EventStream.Subscribe(Self, typeof(DisassociatedEvent));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
    }

    /// <summary>A member not to send to or list devices of: unreachable by the failure detector, or its process gone.</summary>
    private bool Unavailable(Address address) => _unreachable.Contains(address) || _gone.Contains(address);

    private void OnOwnDevices(DeviceRequests.DeviceList list)
    {
        _own = new NodeSnapshot(_node, _manager, list.Devices, _gateway);
        foreach (var address in _members.Keys.Where(a => a != _cluster.SelfAddress && !Unavailable(a)))
            RegistryAt(address).Tell(_own);
    }

    private ActorSelection RegistryAt(Address address) => Context.ActorSelection(new RootActorPath(address) / "user" / Name);

    private void OnSnapshot(NodeSnapshot snapshot)
    {
        var address = Sender.Path.Address;
        if (!_members.ContainsKey(address)) return; // not (or no longer) a member
        var known = _snapshots.TryGetValue(address, out var before) && before.Node == snapshot.Node && before.Manager.Equals(snapshot.Manager);
        _snapshots[address] = snapshot;
        if (!known)
        {
            _gone.Remove(address);
            _departed.Remove(snapshot.Node);
            Announce(new NodeRegistry.NodeAvailable(snapshot.Node, address));
            _log.Info("node {0} at {1} publishes {2} devices", snapshot.Node, address, snapshot.Devices.Length);
            PeersChanged();
        }
    }

    private void OnMember(Member member)
    {
        var isNew = !_members.ContainsKey(member.Address);
        _members[member.Address] = member;
        if (isNew && _own is not null && member.Address != _cluster.SelfAddress) RegistryAt(member.Address).Tell(_own);
    }

    private void OnRemoved(Member member, MemberStatus previous)
    {
        _members.Remove(member.Address);
        _unreachable.Remove(member.Address);
        _gone.Remove(member.Address);
        // Down before removal: the split-brain resolver (or an operator) downed it; Exiting: it left on its own.
        var reason = previous == MemberStatus.Down ? "downed" : "left";
        var name = _snapshots.GetValueOrDefault(member.Address)?.Node ?? "";
        if (member.Address != _cluster.SelfAddress) Remember(new RemovedNode(name, member.Address.ToString(), reason, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        if (_snapshots.Remove(member.Address, out var gone))
        {
            _departed.Add(gone.Node);
            Announce(new NodeRegistry.NodeLost(gone.Node, member.Address));
            _log.Info("node {0} at {1} was removed from the cluster ({2})", gone.Node, member.Address, reason);
        }
        PeersChanged();
    }

    private void Remember(RemovedNode removed)
    {
        _removed.AddFirst(removed);
        while (_removed.Count > MaxRemoved) _removed.RemoveLast();
    }

    /// <summary>The removed nodes still within <see cref="RemovedRetention"/>, the latest first; older ones are forgotten.</summary>
    private ImmutableArray<RemovedNode> Removed()
    {
        var oldest = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - (long)RemovedRetention.TotalMilliseconds;
        while (_removed.Last is { } last && last.Value.AtMs < oldest) _removed.RemoveLast();
        return [.. _removed];
    }

    private void Announce(object e) => Context.System.EventStream.Publish(e);

    private void PeersChanged()
    {
        var reachable = _snapshots.Where(kv => !Unavailable(kv.Key))
            .ToImmutableDictionary(kv => kv.Value.Node, kv => kv.Value.Manager);
        var departed = _departed.Union(_snapshots.Where(kv => Unavailable(kv.Key)).Select(kv => kv.Value.Node));
        _manager.Tell(new DeviceManager.PeersChanged(reachable, [.. departed]));
    }

    private IEnumerable<DeviceInfo> AllDevices()
    {
        var others = _snapshots.Where(kv => !Unavailable(kv.Key)).SelectMany(kv => kv.Value.Devices);
        return (_own?.Devices ?? []).Concat(others).OrderBy(d => d.Id.Node, StringComparer.Ordinal).ThenBy(d => d.Id.Index);
    }

    private NodeList Nodes()
    {
        var self = _cluster.SelfAddress;
        var rows = _members.Values.Select(m =>
        {
            var snapshot = m.Address == self ? _own : _snapshots.GetValueOrDefault(m.Address);
            return new NodeStatus(snapshot?.Node ?? "", m.Address.ToString(), m.Status.ToString(), !Unavailable(m.Address),
                snapshot?.Devices.Length ?? 0, m.Address == self ? _gateway : snapshot?.Gateway);
        });
        return new NodeList(_node, [.. rows.OrderBy(r => r.Node, StringComparer.Ordinal)], Removed());
    }
}
