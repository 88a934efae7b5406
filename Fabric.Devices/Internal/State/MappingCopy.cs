using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Protocol;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices.Internal.State;

/// <summary>
/// iommufd's IOAS_COPY for a context, in three hops on its actor's thread: the source space finds the pieces that
/// cover the range, the context counts a mapping on each piece's buffer (so none can be freed meanwhile), and the
/// target space maps them back to back. The same memory is then reachable through both address spaces.
/// </summary>
internal static class MappingCopy
{
    public static void Start(CopyMapping m, IReadOnlyDictionary<AddressSpaceId, IActorRef> spaces, FabricError? busy, string context, IActorRef sender)
    {
        FabricError? refused = (m.Access & ~Access.ReadWrite) != 0 ? FabricError.Invalid($"{context} cannot copy a mapping with unknown access bits 0x{(int)m.Access:x}")
            : (m.Access & Access.ReadWrite) == 0 ? FabricError.Invalid($"{context} cannot copy a mapping with neither read nor write")
            : !spaces.ContainsKey(m.Source) ? FabricError.NotFound($"{context} has no address space {m.Source}")
            : !spaces.ContainsKey(m.Target) ? FabricError.NotFound($"{context} has no address space {m.Target}")
            : busy;
        if (refused is not null) sender.Tell(refused);
        else spaces[m.Source].Tell(new AddressSpace.CopyOut(m.SourceIova, m.Length, m.Access, m.Target, m.TargetIova?.Value, sender));
    }

    public static void Pieces(ContextProtocol.CopyPieces m, IReadOnlyDictionary<AddressSpaceId, IActorRef> spaces, BufferTable buffers, string context)
    {
        var refused = m.Error ?? (spaces.ContainsKey(m.Target) ? null : FabricError.NotFound($"{context} has no address space {m.Target}"))
            ?? buffers.CheckMappingRoom(m.Pieces.Length)
            ?? (buffers.TryCountMappings([.. m.Pieces.Select(p => p.Buffer.Handle)]) ? null
                : FabricError.Invalid($"{context}: a buffer of the source range was freed while it was being copied"));
        if (refused is not null) m.ReplyTo.Tell(refused);
        else spaces[m.Target].Tell(new AddressSpace.MapPieces(m.Pieces, m.TargetIova, m.Access, m.ReplyTo));
    }

    public static void Done(ContextProtocol.CopyDone m, BufferTable buffers)
    {
        if (m.Error is not null) buffers.MappingsRemoved(m.Handles);
        m.ReplyTo.Tell(m.Error ?? (object)new Mapped(m.Iova));
    }
}
