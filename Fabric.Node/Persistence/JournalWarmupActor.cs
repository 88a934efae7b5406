using Akka.Actor;
using Akka.Persistence;

namespace Fabric.Node.Persistence;

/// <summary>
/// The actor behind <see cref="JournalWarmup"/>. Reads the journal and the snapshot store once, at node start, for a persistence id nobody writes
/// (<c>warmup-&lt;node&gt;</c>), then stops. The first read a process makes through Akka.Persistence.Sql opens its
/// connection and compiles its queries, about a second on this machine: without this, the first shard or job a node
/// hosts (a job's Start, a job recovering after its node was lost) waited for that. Nothing is written.
/// </summary>
internal sealed class JournalWarmupActor : ReceivePersistentActor
{
    private readonly TaskCompletionSource _done;

    public JournalWarmupActor(string node, TaskCompletionSource done)
    {
        _done = done;
        PersistenceId = $"warmup-{node}";
        Recover<RecoveryCompleted>(_ =>
        {
            _done.TrySetResult();
            Context.Stop(Self);
        });
        CommandAny(_ => { });
    }

    public override string PersistenceId { get; }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _done.TrySetException(reason);
        base.OnRecoveryFailure(reason, message);
    }
}
