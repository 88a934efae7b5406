using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.Internal.Commands;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Devices;

/// <summary>
/// An I/O address space (iommufd IOAS, PASID-style: one context's own view of device memory): IOVA → buffer range
/// mappings with read/write permissions. A child of its context; every request reaches it through the context,
/// which has already checked the handle, and it answers the client directly.
/// </summary>
public static class AddressSpace
{
    internal sealed record Spec(AddressSpaceId Id, string Name, ulong PageSize, DeviceId Device, ContextId Context,
        IActorRef ContextActor, IActorRef DeviceActor);

    internal static Props Props(Spec spec) => Akka.Actor.Props.Create(() => new AddressSpaceActor(spec));

    /// <summary>Map a range of a buffer; the context has counted the mapping on the buffer already (undone on failure).</summary>
    internal sealed record MapBuffer(DeviceBuffer Buffer, long Offset, long Length, Access Access, ulong? Iova, IActorRef ReplyTo)
        : INoSerializationVerificationNeeded;

    internal sealed record Unmap(ulong Iova, ulong Length, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    internal sealed record ReadIova(ulong Iova, int Length, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    internal sealed record WriteIova(ulong Iova, byte[] Data, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>
    /// Translate each decoded program's operands, pin what they touch, and hand those that pass to the device to
    /// queue, in order (one message for a whole batch of submissions).
    /// </summary>
    internal sealed record Resolve(ImmutableArray<Resolvable> Submissions) : INoSerializationVerificationNeeded;

    internal sealed record Resolvable(DecodedProgram Program, int Queue, ImmutableArray<FenceId> InFences, int OutFences, SubmitReply Reply);

    /// <summary>Unmap everything, answer <see cref="Core.Protocol.ContextRequests.Ack"/> to <paramref name="ReplyTo"/>, and stop.</summary>
    internal sealed record Destroy(IActorRef ReplyTo) : INoSerializationVerificationNeeded;
}
