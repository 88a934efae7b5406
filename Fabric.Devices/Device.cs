using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Devices;

/// <summary>
/// One emulated accelerator: device memory, queues, a fence timeline, its contexts and its exports.
/// Clients reach it through the <see cref="DeviceManager"/>; its own protocol here is node-internal.
/// </summary>
public static class Device
{
    internal static Props Props(DeviceId id, DeviceProfile profile, int iommuGroup, IActorRef manager, FabricDataPlane? dataPlane) =>
        Akka.Actor.Props.Create(() => new DeviceActor(id, profile.Validate(), iommuGroup, manager, dataPlane));

    /// <summary>
    /// From an address space: a submission that passed validation and translation. The device gives it a fence
    /// (and its out-fences), queues it and answers through the submission's <see cref="SubmitReply"/>. A tiny
    /// submission on an idle queue runs first and is answered already completed.
    /// </summary>
    internal sealed record Enqueue(ImmutableArray<PreparedSubmission> Submissions) : INoSerializationVerificationNeeded;

    /// <summary>From a context: export one of its buffers. Answered to the context with <see cref="ExportCreated"/>.</summary>
    internal sealed record CreateExport(DeviceBuffer Buffer, ContextId Exporter, IActorRef ExporterActor, Access Access, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    internal sealed record ExportCreated(ExportToken Token, IActorRef Export, BufferHandle Handle, long Size, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;
}
