using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Protocol;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices.Internal.Execution;

/// <summary>
/// Where a submission's answers go. An asked <see cref="Submit"/> gets <see cref="Submitted"/> or a
/// <see cref="FabricError"/> as a reply; a tagged one (it named a <see cref="Submit.Notify"/>) gets one-way
/// <see cref="SubmitAccepted"/>, <see cref="SubmitRejected"/> and <see cref="FenceSignalled"/> messages with its
/// tag — no ask, so a client can keep many submissions in flight at the cost of one message each way.
/// </summary>
internal readonly record struct SubmitReply(IActorRef Target, long Tag, bool Tagged)
{
    public static SubmitReply For(Submit submit, IActorRef sender) =>
        submit.Notify is { } notify ? new SubmitReply(notify, submit.Tag, true) : new SubmitReply(sender, 0, false);

    public void Rejected(FabricError error) => Target.Tell(Tagged ? new SubmitRejected(Tag, error) : error);

    /// <summary>Accepted, through <paramref name="outbox"/> when tagged (gathered with others for the same client).</summary>
    public void Accepted(Submitted submitted, FenceStatus? completed, Outbox outbox)
    {
        if (Tagged) outbox.Add(Target, new SubmitAccepted(Tag, submitted, completed));
        else Target.Tell(submitted);
    }

    public void Signalled(FenceStatus status, Outbox outbox)
    {
        if (Tagged) outbox.Add(Target, new FenceSignalled(Tag, status));
    }

}

/// <summary>
/// A device's tagged answers, gathered per client while the device works through its mailbox and sent when it
/// flushes (a message to itself, handled after whatever is already queued): one answer goes alone, several go as
/// one <see cref="SubmitOutcomes"/>. An idle device flushes at once, so nothing waits.
/// </summary>
internal sealed class Outbox
{
    private readonly Dictionary<IActorRef, (List<SubmitAccepted> Accepted, List<FenceSignalled> Signalled)> _pending = [];

    public bool IsEmpty => _pending.Count == 0;

    public void Add(IActorRef target, SubmitAccepted accepted) => For(target).Accepted.Add(accepted);
    public void Add(IActorRef target, FenceSignalled signalled) => For(target).Signalled.Add(signalled);

    private (List<SubmitAccepted> Accepted, List<FenceSignalled> Signalled) For(IActorRef target)
    {
        if (!_pending.TryGetValue(target, out var entry)) _pending[target] = entry = ([], []);
        return entry;
    }

    public void Flush()
    {
        foreach (var (target, (accepted, signalled)) in _pending)
        {
            if (accepted.Count + signalled.Count == 1)
                target.Tell(accepted.Count == 1 ? accepted[0] : signalled[0]);
            else
                target.Tell(new SubmitOutcomes([.. accepted], [.. signalled]));
        }
        _pending.Clear();
    }
}
