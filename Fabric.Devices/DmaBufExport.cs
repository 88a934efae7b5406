using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Serialization;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Memory;
using MessagePack;

namespace Fabric.Devices;

/// <summary>
/// A dma-buf export: the token, the importers attached to it, and one reference on the exported memory.
/// A child of the device, not of the context, because it may outlive the context that made it: it lives while its
/// exporter holds it or any importer is attached, and releases the memory when it stops. A revoke tells every
/// importer and ends it at once.
/// </summary>
public static class DmaBufExport
{
    internal sealed record Spec(ExportToken Token, MemoryBlock Block, long Size, Access Access, IActorRef Exporter,
        string ExporterName, BufferHandle Handle, FabricDataPlane? DataPlane, FaultPlan? Faults = null);

    /// <summary>The block in <paramref name="spec"/> must already carry the reference this export will own.</summary>
    internal static Props Props(Spec spec)
    {
        if ((spec.Access & Access.Read) == 0 || (spec.Access & ~Access.ReadWrite) != 0)
            throw new ArgumentException($"an export is Read or ReadWrite, not {spec.Access}", nameof(spec));
        return Akka.Actor.Props.Create(() => new DmaBufExportActor(spec));
    }

    /// <summary>
    /// An importer context presents a token. Answered to <paramref name="Importer"/>: on its node, with the memory
    /// itself (zero copy); on another node, with a data-plane credential, or — when this node serves no data plane —
    /// attached without a path (its maps and uses fail with EPERM); otherwise with
    /// <see cref="ContextProtocol.AttachFailed"/> (EPERM for a forged token, ENOENT for an export that is gone). The
    /// export death-watches the importer from then on.
    /// </summary>
    [MessagePackObject]
    [Manifest("DmaBufExport.Attach")]
    public sealed record Attach(
        [property: Key(0)] ExportToken Token,
        [property: Key(1)] IActorRef Importer,
        [property: Key(2)] string ImporterName,
        [property: Key(3)] IActorRef ReplyTo) : IFabricMessage;

    /// <summary>An importer released its handle: the attachment ends. No reply.</summary>
    [MessagePackObject]
    [Manifest("DmaBufExport.Detach")]
    public sealed record Detach([property: Key(0)] long Attachment) : IFabricMessage;

    /// <summary>
    /// The exporter revokes: every importer gets <see cref="ContextProtocol.ImportRevoked"/>, the export ends, and
    /// <paramref name="ReplyTo"/> gets <see cref="Core.Protocol.ContextRequests.Revoked"/>. Anyone but the
    /// exporting context → EPERM.
    /// </summary>
    [MessagePackObject]
    [Manifest("DmaBufExport.Revoke")]
    public sealed record Revoke(
        [property: Key(0)] ExportId Export,
        [property: Key(1)] IActorRef Requester,
        [property: Key(2)] string RequesterName,
        [property: Key(3)] IActorRef ReplyTo) : IFabricMessage;

    /// <summary>The exporting context closed: it no longer holds the export. No reply.</summary>
    [MessagePackObject]
    [Manifest("DmaBufExport.ExporterClosed")]
    public sealed record ExporterClosed : IFabricMessage;

    /// <summary>
    /// The exporting context failed: its memory is not to be trusted, so the export is revoked — every importer gets
    /// <see cref="ContextProtocol.ImportRevoked"/> with <paramref name="Error"/> — and it ends. No reply.
    /// </summary>
    internal sealed record ExporterFailed(FabricError Error) : INoSerializationVerificationNeeded;

    /// <summary>
    /// To its device from an export that has ended (revoked, failed over, or unreferenced): route nothing more to it,
    /// then stop it. It answers what was routed to it before as an export that no longer exists.
    /// </summary>
    internal sealed record Retired(ExportId Export) : INoSerializationVerificationNeeded;
}
