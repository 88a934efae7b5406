using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Remote;

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
/// Once the old incarnation is removed, nothing of it is worth keeping: this actor quarantines the address without a
/// UID, which stops whatever endpoint the address has (so a connection stuck waiting for a hand-off is read at last)
/// and gates the address for the retry gate (1 s), after which the newcomer's retried InitJoin is answered on a new
/// connection. A healthy newcomer loses about that second; none has joined yet, since Akka admits a new incarnation
/// only after the old one is removed.
/// </para>
/// </summary>
internal sealed class AssociationResetActor : ReceiveActor
{
    public const string Name = "association-reset";

    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);

    public static Props Props() => Akka.Actor.Props.Create(() => new AssociationResetActor());

    public AssociationResetActor()
    {
        var provider = (IRemoteActorRefProvider)((ExtendedActorSystem)Context.System).Provider;
        var log = Context.GetLogger();
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            if (m.Member.Address == _cluster.SelfAddress) return;
            log.Debug("member {0} removed: its address's remoting starts afresh", m.Member.UniqueAddress);
            provider.Quarantine(m.Member.Address, null);
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
    }

    protected override void PreStart() => _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.MemberRemoved));

    protected override void PostStop() => _cluster.Unsubscribe(Self);
}
