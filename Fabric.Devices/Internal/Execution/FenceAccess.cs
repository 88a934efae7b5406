using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Protocol;
using static Fabric.Core.Protocol.DeviceRequests;

namespace Fabric.Devices.Internal.Execution;

/// <summary>What a running submission uses for its fence commands: waits through the node's manager, signals through its device.</summary>
internal sealed class FenceAccess(IActorRef device, IActorRef manager, long seq) : SubmissionRunner.IFenceAccess
{
    /// <summary>To the device: SIGNAL_FENCE slot <paramref name="Slot"/> of the running submission <paramref name="Seq"/>.</summary>
    public sealed record SignalOut(long Seq, int Slot) : INoSerializationVerificationNeeded;

    public async Task<FenceStatus> WaitAsync(FenceId fence, TimeSpan timeout, CancellationToken cancel)
    {
        var reply = await manager.Ask<object>(new WaitFence(fence, timeout), timeout + TimeSpan.FromSeconds(5), cancel);
        return reply switch
        {
            FenceStatus status => status,
            FabricError error => new FenceStatus(fence, FenceState.Failed, error),
            _ => new FenceStatus(fence, FenceState.Failed, new FabricError(ErrorCode.EIO, $"waiting on {fence} got {reply.GetType().Name}")),
        };
    }

    void SubmissionRunner.IFenceAccess.SignalOut(int slot) => device.Tell(new SignalOut(seq, slot));
}
