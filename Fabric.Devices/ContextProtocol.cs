using Akka.Actor;
using Fabric.Core;
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
        DeviceMemory Memory, DeviceProfile Profile, int IommuGroup, FabricDataPlane? DataPlane, ImportCount Imports);

    internal static Props Props(Spec spec) => Akka.Actor.Props.Create(() => new ContextActor(spec));

    /// <summary>From an export: the import is attached; <paramref name="Block"/> is the shared memory (same node only).</summary>
    internal sealed record AttachedLocal(ExportId Export, IActorRef ExportActor, long Attachment, MemoryBlock Block, long Size,
        Access Access, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>
    /// From an export on another node: the import is attached; its bytes move over that node's data plane with the
    /// credential in <paramref name="Remote"/>. The importer death-watches <paramref name="ExportActor"/>.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextProtocol.AttachedRemote")]
    public sealed record AttachedRemote([property: Key(0)] RemoteMemory Remote, [property: Key(1)] IActorRef ExportActor, [property: Key(2)] IActorRef ReplyTo)
        : IFabricMessage;

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
}
