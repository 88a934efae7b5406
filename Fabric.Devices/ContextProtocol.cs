using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Core.Serialization;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Memory;
using MessagePack;

namespace Fabric.Devices;

/// <summary>
/// A context: one open of a device (a Linux open file of /dev/accel/accelN). Clients talk to it with
/// <see cref="Core.Protocol.ContextRequests"/>; the messages here are what the device, exports and the manager tell it.
/// (The actor is <see cref="ContextActor"/>; Akka's actor <c>Context</c> owns the shorter name.)
/// </summary>
public static class ContextProtocol
{
    internal sealed record Spec(
        DeviceId Device, ContextId Id, IActorRef Client, IActorRef DeviceActor, IActorRef Manager,
        DeviceMemory Memory, DeviceProfile Profile, int IommuGroup, FabricDataPlane? DataPlane, ImportCount Imports, FaultPlan? Faults);

    internal static Props Props(Spec spec) => Akka.Actor.Props.Create(() => new ContextActor(spec));

    /// <summary>From an export: the import is attached; <paramref name="Block"/> is the shared memory (same node only).</summary>
    internal sealed record AttachedLocal(ExportId Export, IActorRef ExportActor, long Attachment, MemoryBlock Block, long Size,
        Access Access, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>
    /// From an export on another node: the import is attached. With <paramref name="Remote"/> its bytes move over that
    /// node's data plane with the credential it holds; without it (<paramref name="Unreachable"/> says why) the import
    /// is attached but every map or use of it fails with EPERM, like a dma-buf importer without a peer-to-peer path.
    /// The importer death-watches <paramref name="ExportActor"/>.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextProtocol.AttachedRemote")]
    public sealed record AttachedRemote(
        [property: Key(0)] RemoteMemory? Remote,
        [property: Key(1)] IActorRef ExportActor,
        [property: Key(2)] IActorRef ReplyTo,
        [property: Key(3)] ExportId Export = default,
        [property: Key(4)] long Attachment = 0,
        [property: Key(5)] long Size = 0,
        [property: Key(6)] Access Access = Access.None,
        [property: Key(7)] string? Unreachable = null) : IFabricMessage;

    /// <summary>From an export, a device or a manager: an import failed; the context answers <paramref name="ReplyTo"/>.</summary>
    [MessagePackObject]
    [Manifest("ContextProtocol.AttachFailed")]
    public sealed record AttachFailed([property: Key(0)] FabricError Error, [property: Key(1)] IActorRef ReplyTo) : IFabricMessage;

    /// <summary>From a device: export creation failed; the context answers <paramref name="ReplyTo"/>.</summary>
    internal sealed record ExportFailed(FabricError Error, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>From an export this context imported: it was revoked; every later use of the import fails with EIO.</summary>
    [MessagePackObject]
    [Manifest("ContextProtocol.ImportRevoked")]
    public sealed record ImportRevoked([property: Key(0)] ExportId Export, [property: Key(1)] FabricError Error) : IFabricMessage;

    /// <summary>From an export this context made: it ended (revoked); the buffer may be unmapped again.</summary>
    [MessagePackObject]
    [Manifest("ContextProtocol.ExportReleased")]
    public sealed record ExportReleased([property: Key(0)] ExportId Export, [property: Key(1)] BufferHandle Handle) : IFabricMessage;

    /// <summary>From the device: a submission of this context faulted; the context is marked (counted in its info).</summary>
    [MessagePackObject]
    [Manifest("ContextProtocol.SubmissionFailed")]
    public sealed record SubmissionFailed([property: Key(0)] FenceId Fence, [property: Key(1)] FabricError Error) : IFabricMessage;

    /// <summary>From the device: it entered or left reset; while not operational the context refuses allocate, map and submit (EBUSY).</summary>
    internal sealed record DeviceStatusChanged(DeviceStatus Status) : INoSerializationVerificationNeeded;

    /// <summary>From the device, after <see cref="Device.NotifyWhenIdle"/>: none of this context's submissions is queued or running.</summary>
    internal sealed record ContextIdle : INoSerializationVerificationNeeded;

    /// <summary>From an address space: a map of <paramref name="Handle"/> ended, at <paramref name="Iova"/> or with <paramref name="Error"/>.</summary>
    internal sealed record MapDone(BufferHandle Handle, ulong Iova, FabricError? Error, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>
    /// From an address space: an unmap (or its destruction) ended. <paramref name="Removed"/> has one entry per mapping
    /// that is gone (the handle it mapped); the users of those ranges have stopped.
    /// </summary>
    internal sealed record UnmapDone(ImmutableArray<BufferHandle> Removed, ulong Bytes, FabricError? Error, IActorRef ReplyTo, bool Destroyed = false)
        : INoSerializationVerificationNeeded;

    /// <summary>From a source address space: the pieces to map in the target of an IOAS_COPY, or why not.</summary>
    internal sealed record CopyPieces(ImmutableArray<AddressSpace.Piece> Pieces, AddressSpaceId Target, ulong? TargetIova, Access Access,
        FabricError? Error, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>From a target address space: the pieces of an IOAS_COPY are mapped at <paramref name="Iova"/>, or none is.</summary>
    internal sealed record CopyDone(ImmutableArray<BufferHandle> Handles, ulong Iova, FabricError? Error, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>From an address space: the device's attach (page size and aperture narrowed) or detach ended.</summary>
    internal sealed record SpaceAttachDone(AddressSpaceId Space, FabricError? Error) : INoSerializationVerificationNeeded;
}
