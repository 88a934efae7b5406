using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Core.Protocol;

/// <summary>
/// Requests a client sends to its context (the actor <see cref="DeviceRequests.DeviceOpened"/> named). Each is
/// answered with the reply named in its comment or with a <see cref="FabricError"/>; a failed request changes nothing.
/// </summary>
public static class ContextRequests
{
    /// <summary>Plain success of a request that returns nothing else.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Ack")]
    public sealed record Ack : IFabricMessage;

    /// <summary>
    /// Allocates zeroed device memory, rounded up to whole pages → <see cref="BufferAllocated"/>. Size 0, an
    /// alignment that is not 0 or a power of two, or unknown flags → EINVAL; no room on the device → ENOMEM.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Allocate")]
    public sealed record Allocate([property: Key(0)] long Size, [property: Key(1)] long Alignment, [property: Key(2)] AllocationFlags Flags) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.BufferAllocated")]
    public sealed record BufferAllocated([property: Key(0)] BufferHandle Handle, [property: Key(1)] long Size) : IFabricMessage;

    /// <summary>
    /// Pins host memory of the client for the device (habanalabs userptr) as a buffer handle → <see cref="HostMemoryPinned"/>,
    /// to be mapped like any buffer. A node in the client's process uses the memory itself (zero-copy); another node
    /// keeps a copy of it in its own host memory (<see cref="HostMemoryPinned.ZeroCopy"/> false) that the client
    /// fills and reads back. A size that is not a positive multiple of the device's page size, or an access that is
    /// not Read, Write or ReadWrite → EINVAL; host memory cannot be exported (EINVAL).
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.PinHostMemory")]
    public sealed record PinHostMemory([property: Key(0)] long Size, [property: Key(1)] Access Access, [property: Key(2)] HostMemoryToken Token)
        : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.HostMemoryPinned")]
    public sealed record HostMemoryPinned([property: Key(0)] BufferHandle Handle, [property: Key(1)] long Size, [property: Key(2)] bool ZeroCopy)
        : IFabricMessage;

    /// <summary>
    /// Releases a handle → <see cref="Ack"/>. Unknown handle or one still mapped → EINVAL. An exported buffer's memory
    /// lives on while the export does; an imported handle detaches from its export.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Free")]
    public sealed record Free([property: Key(0)] BufferHandle Handle) : IFabricMessage;

    /// <summary>Copies host bytes into a buffer at a byte offset → <see cref="Ack"/>.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.WriteBuffer")]
    public sealed record WriteBuffer([property: Key(0)] BufferHandle Handle, [property: Key(1)] long Offset, [property: Key(2)] byte[] Data) : IFabricMessage;

    /// <summary>Copies bytes of a buffer back to the host → <see cref="BufferData"/>.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.ReadBuffer")]
    public sealed record ReadBuffer([property: Key(0)] BufferHandle Handle, [property: Key(1)] long Offset, [property: Key(2)] int Length) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.BufferData")]
    public sealed record BufferData([property: Key(0)] byte[] Data) : IFabricMessage;

    /// <summary>Creates an empty I/O address space (an IOAS) → <see cref="AddressSpaceCreated"/>.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.CreateAddressSpace")]
    public sealed record CreateAddressSpace : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.AddressSpaceCreated")]
    public sealed record AddressSpaceCreated([property: Key(0)] AddressSpaceId Id) : IFabricMessage;

    /// <summary>Destroys an address space and its mappings → <see cref="Ack"/>; a device still attached → EBUSY.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.DestroyAddressSpace")]
    public sealed record DestroyAddressSpace([property: Key(0)] AddressSpaceId Id) : IFabricMessage;

    /// <summary>
    /// Attaches the context's device to an address space, so its submissions translate IOVAs there → <see cref="Ack"/>.
    /// A group-mate attached to another context's address space → EBUSY naming that device and context.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.AttachDevice")]
    public sealed record AttachDevice([property: Key(0)] AddressSpaceId Id) : IFabricMessage;

    /// <summary>Detaches the context's device from an address space → <see cref="Ack"/>.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.DetachDevice")]
    public sealed record DetachDevice([property: Key(0)] AddressSpaceId Id) : IFabricMessage;

    /// <summary>
    /// Maps <paramref name="Length"/> bytes of a buffer from <paramref name="Offset"/> at a fixed IOVA, or at one the
    /// address space chooses when <paramref name="Iova"/> is null → <see cref="Mapped"/>.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Map")]
    public sealed record Map(
        [property: Key(0)] AddressSpaceId Space,
        [property: Key(1)] BufferHandle Handle,
        [property: Key(2)] long Offset,
        [property: Key(3)] long Length,
        [property: Key(4)] Access Access,
        [property: Key(5)] Iova? Iova) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.Mapped")]
    public sealed record Mapped([property: Key(0)] Iova Iova) : IFabricMessage;

    /// <summary>
    /// Unmaps whole mappings inside [Iova, Iova+Length) → <see cref="Unmapped"/> with the mapped bytes removed.
    /// (0, ulong.MaxValue) unmaps everything.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Unmap")]
    public sealed record Unmap([property: Key(0)] AddressSpaceId Space, [property: Key(1)] Iova Iova, [property: Key(2)] ulong Length) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.Unmapped")]
    public sealed record Unmapped([property: Key(0)] ulong Bytes) : IFabricMessage;

    /// <summary>An inclusive IOVA range [<paramref name="Start"/>, <paramref name="Last"/>].</summary>
    [MessagePackObject]
    public readonly record struct IovaRange([property: Key(0)] ulong Start, [property: Key(1)] ulong Last)
    {
        public override string ToString() => $"[0x{Start:x}, 0x{Last:x}]";
    }

    /// <summary>
    /// The IOVA ranges an address space can map now (iommufd IOAS_IOVA_RANGES) → <see cref="IovaRanges"/>: the whole
    /// 64-bit space at the host page size while no device is attached; narrowed to the device's aperture, outside its
    /// reserved regions and at its page size while one is; widened back when it detaches. Unknown space → ENOENT.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.GetIovaRanges")]
    public sealed record GetIovaRanges([property: Key(0)] AddressSpaceId Space) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.IovaRanges")]
    public sealed record IovaRanges([property: Key(0)] ImmutableArray<IovaRange> Ranges, [property: Key(1)] ulong Alignment) : IFabricMessage;

    /// <summary>
    /// Sets the ranges automatic IOVAs come from (iommufd IOAS_ALLOW_IOVAS; replaces the list, empty clears it) → <see cref="Ack"/>.
    /// While set, the usable ranges may not narrow over them: an attach of a device that would is refused (EADDRINUSE).
    /// Malformed or overlapping ranges → EINVAL; a range already not usable → EADDRINUSE.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.AllowIovas")]
    public sealed record AllowIovas([property: Key(0)] AddressSpaceId Space, [property: Key(1)] ImmutableArray<IovaRange> Ranges) : IFabricMessage;

    /// <summary>
    /// Reserves a hole no map may touch (fixed maps into it → EINVAL, automatic ones skip it) for the address space's
    /// life → <see cref="Ack"/>. It overlaps a live mapping or an allowed range → EADDRINUSE.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.ReserveIovas")]
    public sealed record ReserveIovas([property: Key(0)] AddressSpaceId Space, [property: Key(1)] IovaRange Range) : IFabricMessage;

    /// <summary>
    /// Maps the memory behind [<paramref name="SourceIova"/>, +<paramref name="Length"/>) of one address space again in
    /// <paramref name="Target"/> (the same one or another of this context), at <paramref name="TargetIova"/> or where it
    /// chooses (iommufd IOAS_COPY: no bytes move; both mappings reach the same memory) → <see cref="Mapped"/>. The source
    /// range must be mapped without a hole (ENOENT) and allow <paramref name="Access"/> (EPERM).
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.CopyMapping")]
    public sealed record CopyMapping(
        [property: Key(0)] AddressSpaceId Source,
        [property: Key(1)] Iova SourceIova,
        [property: Key(2)] ulong Length,
        [property: Key(3)] AddressSpaceId Target,
        [property: Key(4)] Iova? TargetIova,
        [property: Key(5)] Access Access) : IFabricMessage;

    /// <summary>Reads through an IOVA, checking the mapping's permission → <see cref="BufferData"/>.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.ReadIova")]
    public sealed record ReadIova([property: Key(0)] AddressSpaceId Space, [property: Key(1)] Iova Iova, [property: Key(2)] int Length) : IFabricMessage;

    /// <summary>Writes through an IOVA, checking the mapping's permission → <see cref="Ack"/>.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.WriteIova")]
    public sealed record WriteIova([property: Key(0)] AddressSpaceId Space, [property: Key(1)] Iova Iova, [property: Key(2)] byte[] Data) : IFabricMessage;

    /// <summary>
    /// Submits a command buffer to one of the device's queues → <see cref="Submitted"/> at once, before it runs
    /// (or, when <paramref name="Notify"/> is set, one-way <see cref="SubmitAccepted"/> / <see cref="SubmitRejected"/> to it).
    /// The buffer is decoded and validated first; any fault rejects it whole and nothing runs. IOVAs translate
    /// through the address space the device is attached to. WAIT_FENCE slot i waits for <paramref name="InFences"/>[i];
    /// SIGNAL_FENCE slot j signals the j-th of <paramref name="OutFences"/> new fences (each also signals, with the
    /// submission's result, when the submission ends without signalling it). When <paramref name="Notify"/> is set,
    /// it is told <see cref="FenceSignalled"/> with <paramref name="Tag"/> the moment the submission's fence signals
    /// (a dma_fence callback), so the submitter needs no wait round trip.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Submit")]
    public sealed record Submit(
        [property: Key(0)] int Queue,
        [property: Key(1)] byte[] Commands,
        [property: Key(2)] ImmutableArray<FenceId> InFences,
        [property: Key(3)] int OutFences,
        [property: Key(4)] IActorRef? Notify = null,
        [property: Key(5)] long Tag = 0) : IFabricMessage;

    /// <summary>
    /// To a tagged submission's <see cref="Submit.Notify"/>, instead of a reply: it was accepted with these fences.
    /// <paramref name="Completed"/> is set when it already ran (a tiny submission on an idle queue); otherwise a
    /// <see cref="FenceSignalled"/> follows when its fence signals.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.SubmitAccepted")]
    public sealed record SubmitAccepted([property: Key(0)] long Tag, [property: Key(1)] Submitted Submitted, [property: Key(2)] FenceStatus? Completed) : IFabricMessage;

    /// <summary>
    /// Several tagged submissions at once, handled exactly as if sent one after the other. The client library sends
    /// them this way while earlier ones are still unanswered, so a busy pipeline costs one message per batch.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.SubmitBatch")]
    public sealed record SubmitBatch([property: Key(0)] ImmutableArray<Submit> Submits) : IFabricMessage;

    /// <summary>
    /// A device's answers to one client gathered while it was busy: acceptances first, then fence signals, each in
    /// the order they happened.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.SubmitOutcomes")]
    public sealed record SubmitOutcomes(
        [property: Key(0)] ImmutableArray<SubmitAccepted> Accepted,
        [property: Key(1)] ImmutableArray<FenceSignalled> Signalled) : IFabricMessage;

    /// <summary>To a tagged submission's <see cref="Submit.Notify"/>: it was refused whole; nothing ran.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.SubmitRejected")]
    public sealed record SubmitRejected([property: Key(0)] long Tag, [property: Key(1)] FabricError Error) : IFabricMessage;

    /// <summary>To a submission's <see cref="Submit.Notify"/>: its fence signalled, with this status.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.FenceSignalled")]
    public sealed record FenceSignalled([property: Key(0)] long Tag, [property: Key(1)] FenceStatus Status) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.Submitted")]
    public sealed record Submitted([property: Key(0)] FenceId Fence, [property: Key(1)] ImmutableArray<FenceId> OutFences) : IFabricMessage;

    /// <summary>
    /// Exports a buffer as a dma-buf → <see cref="Exported"/> with the token an importer presents. Only Read or
    /// ReadWrite; an imported buffer cannot be exported again (EINVAL).
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Export")]
    public sealed record Export([property: Key(0)] BufferHandle Handle, [property: Key(1)] Access Access) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.Exported")]
    public sealed record Exported([property: Key(0)] ExportToken Token, [property: Key(1)] long Size) : IFabricMessage;

    /// <summary>
    /// Imports an export into this context → <see cref="Imported"/>: a new handle onto the same memory (no copy).
    /// A forged token → EPERM; a revoked or unknown export → ENOENT.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Import")]
    public sealed record Import([property: Key(0)] ExportToken Token) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.Imported")]
    public sealed record Imported([property: Key(0)] BufferHandle Handle, [property: Key(1)] long Size, [property: Key(2)] Access Access) : IFabricMessage;

    /// <summary>
    /// The exporter revokes its export → <see cref="Revoked"/>: every importer is told, their later use fails with EIO,
    /// and the export is gone. Only the exporting context may revoke (EPERM otherwise).
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Revoke")]
    public sealed record Revoke([property: Key(0)] ExportId Export) : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.Revoked")]
    public sealed record Revoked([property: Key(0)] ExportId Export, [property: Key(1)] int Importers) : IFabricMessage;

    /// <summary>A request about a fence the client owns (sync_file / drm_syncobj); the context hands it to its device.</summary>
    public interface IClientFenceRequest : IFabricMessage;

    /// <summary>
    /// Creates a fence this context owns, on its device's timeline → <see cref="FenceCreated"/>. It signals when the
    /// client says so (<see cref="SignalFence"/>), or with EIO when the context goes (a client's death signals its
    /// fences: every fence signals in finite time). <paramref name="Signalled"/>: a stub that is signalled already
    /// (drm_syncobj's stub fence), with <paramref name="Error"/> if given. With a <paramref name="Timeline"/>, the fence
    /// is point <paramref name="Point"/> of that timeline of the context: it signals only once every earlier point of
    /// the timeline has (a point not above the last one created → EINVAL). Submissions wait on it like on any fence.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.CreateFence")]
    public sealed record CreateFence(
        [property: Key(0)] bool Signalled = false,
        [property: Key(1)] FabricError? Error = null,
        [property: Key(2)] long Timeline = 0,
        [property: Key(3)] long Point = 0) : IClientFenceRequest;

    [MessagePackObject]
    [Manifest("ContextRequests.FenceCreated")]
    public sealed record FenceCreated([property: Key(0)] FenceId Fence) : IFabricMessage;

    /// <summary>
    /// Signals a fence this context created, ok or with <paramref name="Error"/> → <see cref="Ack"/>. A fence of
    /// another context or a device's own → EPERM; one that signalled already → EINVAL (a fence signals once).
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.SignalFence")]
    public sealed record SignalFence([property: Key(0)] FenceId Fence, [property: Key(1)] FabricError? Error = null) : IClientFenceRequest;

    /// <summary>
    /// A new fence that signals once all of <paramref name="Fences"/> have (sync_file merge): ok, or with the first
    /// error among them → <see cref="FenceCreated"/>. Fences of any device; at most <see cref="DeviceRequests.MaxWaitFences"/>.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.MergeFences")]
    public sealed record MergeFences([property: Key(0)] ImmutableArray<FenceId> Fences) : IClientFenceRequest;

    /// <summary>Reads the context's own counters → <see cref="ContextInfo"/>.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.GetContextInfo")]
    public sealed record GetContextInfo : IFabricMessage;

    /// <summary>Closes the context → <see cref="Closed"/> once everything it held is released.</summary>
    [MessagePackObject]
    [Manifest("ContextRequests.Close")]
    public sealed record Close : IFabricMessage;

    [MessagePackObject]
    [Manifest("ContextRequests.Closed")]
    public sealed record Closed([property: Key(0)] ContextId Id) : IFabricMessage;

    /// <summary>
    /// To the context's client, one-way: the context stopped without being closed — one of its actors failed (EIO,
    /// naming the exception's type) or its device did — and released everything it held. Every pending and later
    /// request on it fails with <paramref name="Error"/>.
    /// </summary>
    [MessagePackObject]
    [Manifest("ContextRequests.ContextFailed")]
    public sealed record ContextFailed([property: Key(0)] ContextId Id, [property: Key(1)] IActorRef Context, [property: Key(2)] FabricError Error)
        : IFabricMessage;
}
