using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Remote;
using Fabric.Core.Client;

namespace Fabric.Node.Cluster;

/// <summary>
/// Starts the remoting of a removed member's address afresh, so that a new incarnation at that address can join.
/// <para>
/// A node killed and started again at its address connects to the seeds within a second or two, while they still
/// hold the old incarnation (unreachable, downed, not yet removed) and still send it gossip and heartbeats. When a
/// seed's connection to the address is re-made at the moment the newcomer's own connection arrives, Akka's classic
/// remoting can hand the newcomer's connection to a writer that has just failed: the connection stays open but is
/// never read (akka/akka-core#24393). The newcomer's InitJoin is never answered, and it retries for ever ("Couldn't
/// join seed nodes after [N] attempts"): measured here in 1 of 4 restarts at the same port.
/// </para>
/// <para>
/// Such a stuck connection exists only if the newcomer was there before the removal. So at the removal this actor
/// probes the address's port: if nothing listens, no newcomer has come yet and one that comes later joins on fresh
/// connections, so nothing is reset (resetting then would land on its first connections, made a few seconds into its
/// start: the race below). If something listens and no new incarnation has joined from the address
/// <see cref="Grace"/> after the removal, this actor quarantines the address without a UID, which stops whatever
/// endpoint the address has (so a connection stuck waiting for a hand-off is read at last) and gates the address for
/// the retry gate (1 s), after which the newcomer's retried InitJoin is answered on a new connection. A newcomer that
/// has joined meanwhile is left alone: its association works, and resetting it would make both ends connect again at
/// once — the very race (seen in 5-node chaos: the link between a seed and a newcomer dead from then on, and the
/// split-brain resolver downing both).
/// </para>
/// </summary>
internal sealed class AssociationResetActor : ReceiveActor, IWithTimers
{
    public const string Name = "association-reset";

    /// <summary>How long after a removal a new incarnation has to join before its address's remoting is reset.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    private sealed record Check(Address Address);

    public ITimerScheduler Timers { get; set; } = null!;

    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);

    public static Props Props() => Akka.Actor.Props.Create(() => new AssociationResetActor());

    public AssociationResetActor()
    {
        var provider = (IRemoteActorRefProvider)((ExtendedActorSystem)Context.System).Provider;
        var log = Context.GetLogger();
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            if (m.Member.Address != _cluster.SelfAddress) PortProbe.Start(m.Member.Address, Self);
        });
        Receive<PortProbe.Answered>(m =>
        {
            if (m.Refused) log.Debug("nothing listens at {0} as its member is removed: no newcomer to unstick", m.Address);
            else Timers.StartSingleTimer(m.Address, new Check(m.Address), Grace);
        });
        Receive<Check>(c =>
        {
            if (_cluster.State.Members.Any(m => m.Address == c.Address)) return; // a new incarnation joined: its link works
            log.Debug("no member at {0} {1} s after a removal: its address's remoting starts afresh", c.Address, Grace.TotalSeconds);
            provider.Quarantine(c.Address, null);
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
    }

    protected override void PreStart() => _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.MemberRemoved));

    protected override void PostStop() => _cluster.Unsubscribe(Self);
}
