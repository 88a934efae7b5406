using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.State;

namespace Fabric.Devices;

/// <summary>
/// An I/O address space (iommufd IOAS, PASID-style: one context's own view of device memory): IOVA → buffer range
/// mappings with read/write permissions. A child of its context; every request reaches it through the context,
/// which has already checked the handle. Map, unmap and destroy are answered to the context (which keeps the counts
/// and answers the client); reads, writes and submissions are answered directly.
/// </summary>
public static class AddressSpace
{
    /// <summary>The host's page size: the alignment of an address space no device is attached to.</summary>
    public const ulong HostPageSize = 4096;

    internal sealed record Spec(AddressSpaceId Id, string Name, DeviceProfile Profile, DeviceId Device, ContextId Context,
        IActorRef ContextActor, IActorRef DeviceActor, FaultPlan? Faults = null);

    internal static Props Props(Spec spec) => Akka.Actor.Props.Create(() => new AddressSpaceActor(spec));

    /// <summary>Map a range of a buffer; the context counted the mapping already and hears <see cref="ContextProtocol.MapDone"/>.</summary>
    internal sealed record MapBuffer(BufferView Buffer, long Offset, long Length, Access Access, ulong? Iova, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    /// <summary>
    /// Unmap the whole mappings in a range; those of <paramref name="Exported"/> buffers are refused (EINVAL). Users of the
    /// ranges (queued or running submissions) are aborted with EFAULT and waited for before the context hears
    /// <see cref="ContextProtocol.UnmapDone"/>: no device access lands after an unmap is answered.
    /// </summary>
    internal sealed record Unmap(ulong Iova, ulong Length, ImmutableHashSet<BufferHandle> Exported, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    internal sealed record ReadIova(ulong Iova, int Length, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    internal sealed record WriteIova(ulong Iova, byte[] Data, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>
    /// Decode each submission, translate its operands, pin what they touch, and hand those that pass to the device to
    /// queue, in order (one message for a whole batch). <paramref name="Sender"/> is who submitted (answered unless tagged).
    /// </summary>
    internal sealed record Resolve(ImmutableArray<Core.Protocol.ContextRequests.Submit> Submissions, IActorRef Sender) : INoSerializationVerificationNeeded;

    /// <summary>From the device: no submission that used the mappings of unmap <paramref name="Unmap"/> runs any more.</summary>
    internal sealed record UsersEnded(long Unmap) : INoSerializationVerificationNeeded;

    /// <summary>The context's device attaches (true: the page size narrows to the device's) or detaches (back to the host's).</summary>
    internal sealed record SetAttached(bool Attached) : INoSerializationVerificationNeeded;

    internal sealed record GetRanges(IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    internal sealed record Allow(ImmutableArray<(ulong Start, ulong Last)> Ranges, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    internal sealed record Reserve(ulong Start, ulong Last, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>IOAS_COPY, source side: find the pieces covering the range; the context hears <see cref="ContextProtocol.CopyPieces"/>.</summary>
    internal sealed record CopyOut(ulong Iova, ulong Length, Access Access, AddressSpaceId Target, ulong? TargetIova, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    /// <summary>IOAS_COPY, target side: map the pieces back to back, all or none; the context hears <see cref="ContextProtocol.MapDone"/> per piece.</summary>
    internal sealed record MapPieces(ImmutableArray<Piece> Pieces, ulong? Iova, Access Access, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>A piece of a source range: <paramref name="Length"/> bytes of a buffer from <paramref name="Offset"/>.</summary>
    internal sealed record Piece(BufferView Buffer, long Offset, ulong Length);

    /// <summary>Unmap everything (waiting for users like <see cref="Unmap"/>), tell the context, and stop.</summary>
    internal sealed record Destroy(IActorRef ReplyTo) : INoSerializationVerificationNeeded;
}
