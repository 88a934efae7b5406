using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.State;

namespace Fabric.Devices;

/// <summary>
/// One emulated accelerator: device memory, queues, a fence timeline, its contexts and its exports.
/// Clients reach it through the <see cref="DeviceManager"/>; its own protocol here is node-internal.
/// </summary>
public static class Device
{
    internal static Props Props(DeviceId id, DeviceProfile profile, int iommuGroup, IActorRef manager, FabricDataPlane? dataPlane,
        FaultPlan? faults = null) =>
        Akka.Actor.Props.Create(() => new DeviceActor(id, profile.Validate(), iommuGroup, manager, dataPlane, faults));

    /// <summary>
    /// From an address space: a submission that passed validation and translation. The device gives it a fence
    /// (and its out-fences), queues it and answers through the submission's <see cref="SubmitReply"/>. A tiny
    /// submission on an idle queue runs first and is answered already completed.
    /// </summary>
    internal sealed record Enqueue(ImmutableArray<PreparedSubmission> Submissions) : INoSerializationVerificationNeeded;

    /// <summary>From a context: export one of its buffers. Answered to the context with <see cref="ExportCreated"/>.</summary>
    internal sealed record CreateExport(BufferView Buffer, ContextId Exporter, IActorRef ExporterActor, Access Access, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    internal sealed record ExportCreated(ExportToken Token, IActorRef Export, BufferHandle Handle, long Size, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    /// <summary>
    /// From an address space unmapping <paramref name="Mappings"/> (serials): the submissions of that space using any of
    /// them stop — queued ones fail at once, running ones are cancelled — with <paramref name="Error"/>; the space hears
    /// <see cref="AddressSpace.UsersEnded"/> for <paramref name="Unmap"/> once none of them runs (at once when none did).
    /// </summary>
    internal sealed record AbortUsers(IActorRef Space, long Unmap, ImmutableHashSet<long> Mappings, FabricError Error) : INoSerializationVerificationNeeded;

    /// <summary>
    /// From a context that closes or stops: its queued submissions fail and its running ones are cancelled with
    /// <paramref name="Error"/> (a closed file's work does not outlive it). No reply; see <see cref="NotifyWhenIdle"/>.
    /// </summary>
    internal sealed record AbortContext(ContextId Context, FabricError Error) : INoSerializationVerificationNeeded;

    /// <summary>From a context: a client-fence request of its client (create, signal, merge), answered to <paramref name="ReplyTo"/>.</summary>
    internal sealed record ClientFence(ContextId Context, Core.Protocol.ContextRequests.IClientFenceRequest Request, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    /// <summary>From a closing context: answer <see cref="ContextProtocol.ContextIdle"/> once none of its submissions is queued or running.</summary>
    internal sealed record NotifyWhenIdle(ContextId Context) : INoSerializationVerificationNeeded;

    /// <summary>
    /// From the manager: the device is removed (hot-unplug, driver release). It refuses everything with ENODEV, aborts
    /// its work, tells its contexts' clients, and stops once no submission runs.
    /// </summary>
    internal sealed record Remove : INoSerializationVerificationNeeded;

    /// <summary>To the manager from a removed device with nothing running: route nothing more to it, then stop it.</summary>
    internal sealed record Retired(int Index) : INoSerializationVerificationNeeded;
}
