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

    /// <summary>Accepted with its fences; <paramref name="completed"/> when it already ran (then no signal follows).</summary>
    public void Accepted(Submitted submitted, FenceStatus? completed) =>
        Target.Tell(Tagged ? new SubmitAccepted(Tag, submitted, completed) : submitted);

    public void Signalled(FenceStatus status)
    {
        if (Tagged) Target.Tell(new FenceSignalled(Tag, status));
    }
}
