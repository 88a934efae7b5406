using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Devices.Internal.State;

/// <summary>
/// What one buffer handle is, as an immutable fact the context hands to its address spaces and submissions: local
/// memory (<see cref="Block"/>), another node's memory (<see cref="Remote"/>), or an import this node cannot reach
/// (<see cref="Unreachable"/> says why: attached, but every map or use is EPERM, as for a dma-buf importer without
/// a peer-to-peer path). <see cref="HostMemory"/> marks a client's host memory pinned for the device (userptr): a
/// local block that is not device memory and cannot be exported. Counts (mappings, exports) are the context's own,
/// in its <see cref="BufferTable"/>.
/// </summary>
internal sealed record BufferView(
    BufferHandle Handle,
    long Size,
    Access Access,
    AllocationFlags Flags,
    MemoryBlock? Block,
    RemoteMemory? Remote,
    BufferView.ImportSource? Import,
    Revocation Revocation,
    string? Unreachable = null,
    bool HostMemory = false)
{
    /// <summary>Where an imported buffer comes from, and the attachment to drop when it is freed.</summary>
    public sealed record ImportSource(ExportId Export, IActorRef ExportActor, long Attachment);

    public bool IsImport => Import is not null;

    /// <summary>The local memory; not for a remote import (check <see cref="Remote"/> first).</summary>
    public MemoryBlock LocalBlock => Block ?? throw new InvalidOperationException($"{this} has no local memory");

    /// <summary>Drops what the handle held: an import detaches from its export, allocated memory loses the handle's reference.</summary>
    public void Release(ImportCount imports)
    {
        if (Import is { } import)
        {
            import.ExportActor.Tell(new DmaBufExport.Detach(import.Attachment));
            imports.Released();
        }
        else LocalBlock.Release();
    }

    public override string ToString() =>
        Import is { } i ? $"{Handle} (imported from {i.Export})" : HostMemory ? $"{Handle} (host memory)" : Handle.ToString();
}

/// <summary>
/// Set once, by the context that owns the import, when the export behind it is revoked or lost; everyone holding
/// the <see cref="BufferView"/> (address spaces, running submissions) reads it, so a revoke stops work already queued.
/// Write-once like a fence: the first error stays.
/// </summary>
internal sealed class Revocation
{
    private FabricError? _error;

    /// <summary>A buffer that is never revoked (memory the context allocated).</summary>
    public static Revocation Never() => new();

    public FabricError? Error => Volatile.Read(ref _error);

    public bool Revoke(FabricError error) => Interlocked.CompareExchange(ref _error, error, null) is null;
}
