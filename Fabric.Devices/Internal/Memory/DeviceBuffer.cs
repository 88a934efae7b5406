using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.DataPlane;

namespace Fabric.Devices.Internal.Memory;

/// <summary>
/// A buffer handle in a context: either memory the context allocated (it holds one reference on the block) or an
/// import of another context's export (the export holds the reference; the import holds an attachment).
/// Shared by the context, its address spaces and in-flight submissions, so its counters are thread-safe.
/// </summary>
internal sealed class DeviceBuffer
{
    private int _mappings;
    private int _exports;
    private FabricError? _revoked;

    private readonly MemoryBlock? _block;

    private DeviceBuffer(BufferHandle handle, MemoryBlock? block, long size, Access access, Import? import, AllocationFlags flags,
        RemoteMemory? remote = null)
    {
        Flags = flags;
        Handle = handle;
        _block = block;
        Remote = remote;
        Size = size;
        Access = access;
        ImportedFrom = import;
    }

    /// <summary>Memory this context allocated; takes over the block's first reference.</summary>
    public static DeviceBuffer Allocated(BufferHandle handle, MemoryBlock block, AllocationFlags flags) =>
        new(handle, block, block.Size, Access.ReadWrite, null, flags);

    /// <summary>An import: the block stays referenced by the export while the attachment lives.</summary>
    public static DeviceBuffer Imported(BufferHandle handle, MemoryBlock block, long size, Access access, Import import) =>
        new(handle, block, size, access, import, AllocationFlags.None);

    /// <summary>An import of another node's export: no local memory; its bytes move over the data plane.</summary>
    public static DeviceBuffer RemoteImported(BufferHandle handle, RemoteMemory remote, Import import) =>
        new(handle, null, remote.Size, remote.Access, import, AllocationFlags.None, remote);

    /// <summary>The local memory; not for a remote import (check <see cref="Remote"/> first).</summary>
    public MemoryBlock Block => _block ?? throw new InvalidOperationException($"{this} is remote: it has no local memory");

    /// <summary>Set for an import of another node's export.</summary>
    public RemoteMemory? Remote { get; }

    /// <summary>Where an imported buffer comes from, and the attachment to drop when it is freed.</summary>
    public sealed record Import(ExportId Export, IActorRef ExportActor, long Attachment);

    public BufferHandle Handle { get; }
    public AllocationFlags Flags { get; }
    public long Size { get; }

    /// <summary>What this handle may do: ReadWrite for allocated memory, the export's access for an import.</summary>
    public Access Access { get; }

    public Import? ImportedFrom { get; }
    public bool OwnsBlockReference => ImportedFrom is null;

    public int Mappings => Volatile.Read(ref _mappings);
    public void AddMapping() => Interlocked.Increment(ref _mappings);
    public void RemoveMapping() => Interlocked.Decrement(ref _mappings);

    /// <summary>Live exports of this buffer; a mapping of an exported buffer may not be unmapped.</summary>
    public int Exports => Volatile.Read(ref _exports);
    public void AddExport() => Interlocked.Increment(ref _exports);
    public void RemoveExport() => Interlocked.Decrement(ref _exports);

    /// <summary>Set once when the export behind an import is revoked; every later use fails with it.</summary>
    public FabricError? RevokedError => Volatile.Read(ref _revoked);
    public void MarkRevoked(FabricError error) => Interlocked.CompareExchange(ref _revoked, error, null);

    public override string ToString() => ImportedFrom is { } i ? $"{Handle} (imported from {i.Export})" : Handle.ToString();
}
