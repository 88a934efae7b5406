using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Memory;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices.Internal.State;

/// <summary>
/// A context's buffer handles and their counts (the habanalabs handle idr of one open file). Pure: every operation
/// returns a result or a <see cref="FabricError"/> and changes nothing when it fails. Codes follow habanalabs: an
/// unknown handle is EINVAL everywhere; a handle another context issued is EPERM (the handle carries its context).
/// It counts the handles and mappings the context holds and refuses one past <paramref name="maxBuffers"/> or
/// <paramref name="maxMappings"/> (ENOSPC, see <see cref="ContextLimits"/>) before anything is allocated or mapped.
/// </summary>
internal sealed class BufferTable(ContextId context, string name, int maxBuffers = int.MaxValue, int maxMappings = int.MaxValue)
{
    private sealed class Entry(BufferView view)
    {
        public BufferView View { get; } = view;
        public int Mappings;
        public int Exports;
    }

    private readonly Dictionary<BufferHandle, Entry> _entries = [];
    private long _next;
    private int _mappings;

    public int Count => _entries.Count;
    public long Bytes => _entries.Values.Sum(e => e.View.Size);
    public int Imports => _entries.Values.Count(e => e.View.IsImport);
    public IEnumerable<BufferView> Views => _entries.Values.Select(e => e.View);

    /// <summary>Mappings of this context's buffers, across its address spaces (counted from map request to unmap).</summary>
    public int Mappings => _mappings;

    /// <summary>Null when one more handle fits under the context's limit, else the ENOSPC that refuses it.</summary>
    public FabricError? CheckRoom() => ContextLimits.Buffer(name, _entries.Count, maxBuffers);

    /// <summary>Handles of buffers with a live export: their mappings may not be unmapped.</summary>
    public ImmutableHashSet<BufferHandle> Exported => [.. _entries.Where(e => e.Value.Exports > 0).Select(e => e.Key)];

    public int MappingsOf(BufferHandle handle) => _entries.TryGetValue(handle, out var e) ? e.Mappings : 0;

    /// <summary>Checks an allocation request against the device's profile; null when it may go ahead.</summary>
    public FabricError? CheckAllocate(long size, long alignment, AllocationFlags flags, DeviceProfile profile, DeviceId device)
    {
        if (size <= 0) return FabricError.Invalid($"{name} cannot allocate {size} bytes: the size must be positive");
        if (alignment < 0 || (alignment & (alignment - 1)) != 0)
            return FabricError.Invalid($"{name} cannot allocate with alignment {alignment}: it must be 0 or a power of two");
        if ((flags & ~(AllocationFlags.Contiguous | AllocationFlags.NoExport)) != 0)
            return FabricError.Invalid($"{name} cannot allocate with flags 0x{(int)flags:x}: unknown flag bits");
        if (size > profile.MemoryBytes)
            return new FabricError(ErrorCode.ENOMEM, $"{name} cannot allocate {size} bytes: {device} has only {profile.MemoryBytes} bytes of memory");
        return null;
    }

    /// <summary>Allocate's answer: <see cref="BufferAllocated"/>, or the error that refused it.</summary>
    public object Allocate(Allocate m, DeviceMemory memory, DeviceProfile profile, DeviceId device) =>
        TryAllocate(memory, profile, device, m.Size, m.Alignment, m.Flags, out var buffer, out var error) ? new BufferAllocated(buffer.Handle, buffer.Size) : error!;

    /// <summary>PinHostMemory's answer: <see cref="HostMemoryPinned"/>, or the error that refused it.</summary>
    public object PinHost(PinHostMemory m, DeviceProfile profile, DeviceId device) =>
        TryPinHost(m.Size, m.Access, m.Token, profile, device, out var buffer, out var zeroCopy, out var error)
            ? new HostMemoryPinned(buffer.Handle, buffer.Size, zeroCopy) : error!;

    /// <summary>Free's answer: <see cref="Ack"/> once the buffer is gone from the table and its memory released, or the error.</summary>
    public object Free(Free m, ImportCount imports)
    {
        if (!TryFree(m.Handle, out var buffer, out var error)) return error!;
        buffer.Release(imports);
        return new Ack();
    }

    /// <summary>Checks and allocates zeroed memory, rounded up to whole pages, as a new handle.</summary>
    public bool TryAllocate(DeviceMemory memory, DeviceProfile profile, DeviceId device, long size, long alignment, AllocationFlags flags,
        out BufferView view, out FabricError? error)
    {
        view = null!;
        if ((error = CheckAllocate(size, alignment, flags, profile, device) ?? CheckRoom()) is not null) return false;
        var rounded = (size + profile.PageSize - 1) / profile.PageSize * profile.PageSize;
        if (memory.TryAllocate(rounded, Math.Max(alignment, profile.PageSize)) is not { } block)
        {
            var stats = memory.Stats;
            error = new FabricError(ErrorCode.ENOMEM, $"{name} cannot allocate {rounded} bytes: {device} has {stats.Free} of " +
                                                      $"{stats.Capacity} bytes free, the largest free range is {stats.LargestFree} bytes");
            return false;
        }
        view = AddAllocated(block, flags);
        return true;
    }

    /// <summary>Adds memory the context allocated (the block's first reference becomes the handle's).</summary>
    public BufferView AddAllocated(MemoryBlock block, AllocationFlags flags) =>
        Add(handle => new BufferView(handle, block.Size, Access.ReadWrite, flags, block, null, null, Revocation.Never()));

    /// <summary>
    /// Checks a pin of host memory and adds it as a new handle: the client's own memory when it is in this process
    /// (<paramref name="zeroCopy"/>), else a zeroed copy in this node's memory, at most the device's memory size.
    /// </summary>
    public bool TryPinHost(long size, Access access, HostMemoryToken token, DeviceProfile profile, DeviceId device,
        out BufferView view, out bool zeroCopy, out FabricError? error)
    {
        (view, zeroCopy, error) = (null!, false, null);
        if (access is not (Access.Read or Access.Write or Access.ReadWrite))
            error = FabricError.Invalid($"{name} cannot pin {token} for access {access}: use Read, Write or ReadWrite");
        else if (size <= 0 || size % profile.PageSize != 0)
            error = FabricError.Invalid($"{name} cannot pin {size} bytes of {token}: the size must be a positive multiple of " +
                                        $"{device}'s page size ({profile.PageSize} bytes)");
        if ((error ??= CheckRoom()) is not null) return false;
        MemoryBlock block;
        if (HostMemoryPins.TryClaim(token, size) is { } pin) (block, zeroCopy) = (Memory.HostMemory.Pinned(pin), true);
        else if (size > profile.MemoryBytes)
        {
            error = new FabricError(ErrorCode.ENOMEM, $"{name} cannot keep a copy of {size} bytes of {token} (its client is in " +
                                                      $"another process): a copy may be at most {device}'s memory size, {profile.MemoryBytes} bytes");
            return false;
        }
        else
        {
            try { block = Memory.HostMemory.Copy(size); }
            catch (OutOfMemoryException)
            {
                error = new FabricError(ErrorCode.ENOMEM, $"{name} cannot keep a copy of {size} bytes of {token}: this node is out of host memory");
                return false;
            }
        }
        view = Add(handle => new BufferView(handle, size, access, AllocationFlags.None, block, null, null, Revocation.Never(), HostMemory: true));
        return true;
    }

    /// <summary>Adds an import: local memory of an export on this node, remote memory, or an unreachable one.</summary>
    public BufferView AddImport(BufferView.ImportSource source, long size, Access access, MemoryBlock? block, RemoteMemory? remote,
        string? unreachable = null) =>
        Add(handle => new BufferView(handle, size, access, AllocationFlags.None, block, remote, source, new Revocation(), unreachable));

    private BufferView Add(Func<BufferHandle, BufferView> make)
    {
        var view = make(BufferHandle.Of(context, ++_next));
        _entries[view.Handle] = new Entry(view);
        return view;
    }

    public bool TryGet(BufferHandle handle, out BufferView view, out FabricError? error)
    {
        if (_entries.TryGetValue(handle, out var entry))
        {
            (view, error) = (entry.View, null);
            return true;
        }
        view = null!;
        error = handle.ContextValue != 0 && handle.ContextValue != context.Value
            ? new FabricError(ErrorCode.EPERM, $"{name} may not use {handle}: it belongs to ctx-{handle.ContextValue}")
            : FabricError.Invalid($"{name} has no buffer {handle}");
        return false;
    }

    /// <summary>Removes a handle that is not mapped; the caller releases what the returned view holds.</summary>
    public bool TryFree(BufferHandle handle, out BufferView view, out FabricError? error)
    {
        if (!TryGet(handle, out view, out error)) return false;
        var mappings = _entries[handle].Mappings;
        if (mappings > 0)
        {
            error = FabricError.Invalid($"{name} cannot free {view}: it is still mapped ({mappings} mappings); unmap it first");
            return false;
        }
        _entries.Remove(handle);
        return true;
    }

    /// <summary>Checks a host read or write of [offset, offset+length) of a buffer.</summary>
    public bool TryHostAccess(BufferHandle handle, long offset, long length, Access needed, out BufferView view, out FabricError? error)
    {
        if (!TryGet(handle, out view, out error)) return false;
        error = Usable(view, needed == Access.Write ? "write" : "read", needed)
                ?? (offset < 0 || length < 0 || offset > view.Size || length > view.Size - offset
                    ? FabricError.Invalid($"{name}: [{offset}, {offset}+{length}) is outside {view} of {view.Size} bytes")
                    : null);
        return error is null;
    }

    /// <summary>Checks a map of [offset, offset+length) of a buffer (length -1: to its end) and counts the mapping.</summary>
    public bool TryBeginMap(BufferHandle handle, long offset, long length, Access access, out BufferView view, out long mappedLength,
        out FabricError? error)
    {
        mappedLength = 0;
        if (!TryGet(handle, out view, out error)) return false;
        mappedLength = length < 0 ? view.Size - offset : length;
        if (offset < 0 || mappedLength < 0 || offset > view.Size || mappedLength > view.Size - offset)
            error = FabricError.Invalid($"{name} cannot map [{offset}, {offset}+{mappedLength}) of {view}: it has {view.Size} bytes");
        else if ((access & ~view.Access) != 0)
            error = new FabricError(ErrorCode.EPERM, $"{name} cannot map {view} for {access}: the handle allows only {view.Access}");
        else error = Usable(view, "map", access) ?? ContextLimits.Mappings(name, _mappings, 1, maxMappings);
        if (error is not null) return false;
        _entries[handle].Mappings++;
        _mappings++;
        return true;
    }

    /// <summary>Counts one more mapping on each handle (pieces of an IOAS_COPY); false and nothing counted when one is gone.</summary>
    public bool TryCountMappings(IReadOnlyList<BufferHandle> handles)
    {
        if (handles.Any(h => !_entries.ContainsKey(h))) return false;
        foreach (var handle in handles) _entries[handle].Mappings++;
        _mappings += handles.Count;
        return true;
    }

    /// <summary>Null when <paramref name="adding"/> more mappings fit under the context's limit, else the ENOSPC that refuses them.</summary>
    public FabricError? CheckMappingRoom(int adding) => ContextLimits.Mappings(name, _mappings, adding, maxMappings);

    /// <summary>The address space answered a map: a refused one is uncounted. Returns the client's reply.</summary>
    public object MapEnded(ContextProtocol.MapDone m)
    {
        if (m.Error is not null) MappingsRemoved([m.Handle]);
        return m.Error ?? (object)new Core.Protocol.ContextRequests.Mapped(m.Iova);
    }

    /// <summary>The address space answered an unmap or its destruction: its mappings are uncounted. Returns the client's reply.</summary>
    public object UnmapEnded(ContextProtocol.UnmapDone m)
    {
        MappingsRemoved(m.Removed);
        return m.Error ?? (m.Destroyed ? new Core.Protocol.ContextRequests.Ack() : (object)new Core.Protocol.ContextRequests.Unmapped(m.Bytes));
    }

    /// <summary>A mapping counted by <see cref="TryBeginMap"/> was refused, or mappings of the handles were unmapped.</summary>
    public void MappingsRemoved(IEnumerable<BufferHandle> handles)
    {
        foreach (var handle in handles)
            if (_entries.TryGetValue(handle, out var entry) && entry.Mappings > 0)
            {
                entry.Mappings--;
                _mappings--;
            }
    }

    /// <summary>Checks that a buffer may be exported with <paramref name="access"/>.</summary>
    public bool TryBeginExport(BufferHandle handle, Access access, out BufferView view, out FabricError? error)
    {
        if (!TryGet(handle, out view, out error)) return false;
        if (view.IsImport) error = FabricError.Invalid($"{name} cannot export {view}: an imported buffer is exported only by its owner");
        else if (view.HostMemory) error = FabricError.Invalid($"{name} cannot export {view}: only device memory can be exported");
        else if (view.Flags.HasFlag(AllocationFlags.NoExport))
            error = new FabricError(ErrorCode.EPERM, $"{name} cannot export {view}: it was allocated with NoExport");
        else if (access is not (Access.Read or Access.ReadWrite))
            error = FabricError.Invalid($"{name} cannot export {view} with access {access}: use Read or ReadWrite");
        return error is null;
    }

    private readonly Dictionary<ExportId, (Akka.Actor.IActorRef Actor, BufferHandle Handle)> _exports = [];

    /// <summary>The exports this context made and holds, with their actors.</summary>
    public IReadOnlyDictionary<ExportId, (Akka.Actor.IActorRef Actor, BufferHandle Handle)> Exports => _exports;

    /// <summary>An export of the buffer was made; false when the handle was freed meanwhile.</summary>
    public bool ExportAdded(ExportId export, Akka.Actor.IActorRef actor, BufferHandle handle)
    {
        if (!_entries.TryGetValue(handle, out var entry)) return false;
        entry.Exports++;
        _exports[export] = (actor, handle);
        return true;
    }

    /// <summary>An export of this context ended (revoked).</summary>
    public void ExportRemoved(ExportId export)
    {
        if (_exports.Remove(export, out var e) && _entries.TryGetValue(e.Handle, out var entry) && entry.Exports > 0) entry.Exports--;
    }

    /// <summary>Marks every import of <paramref name="export"/> revoked; returns the handles it affected.</summary>
    public ImmutableArray<BufferHandle> Revoke(Func<BufferView.ImportSource, bool> of, FabricError error)
    {
        var affected = ImmutableArray.CreateBuilder<BufferHandle>();
        foreach (var entry in _entries.Values)
            if (entry.View.Import is { } source && of(source))
            {
                entry.View.Revocation.Revoke(error);
                affected.Add(entry.View.Handle);
            }
        return affected.ToImmutable();
    }

    /// <summary>Removes every handle (the context is stopping); the caller releases what each view holds.</summary>
    public ImmutableArray<BufferView> RemoveAll()
    {
        var all = _entries.Values.Select(e => e.View).ToImmutableArray();
        _entries.Clear();
        _exports.Clear();
        _mappings = 0;
        return all;
    }

    /// <summary>What makes a buffer unusable for <paramref name="what"/>: an unreachable import (EPERM), a revoked one (ENODEV on map, as iommufd refuses a revoked dma-buf; EIO otherwise).</summary>
    private FabricError? Usable(BufferView view, string what, Access needed)
    {
        if ((view.Access & needed) != needed && what != "map")
            return new FabricError(ErrorCode.EPERM, $"{name} may not {what} {view}: it allows {view.Access}");
        if (view.Unreachable is { } why)
            return new FabricError(ErrorCode.EPERM, $"{name} cannot {what} {view}: {why}");
        if (view.Revocation.Error is { } revoked)
            return new FabricError(what == "map" ? ErrorCode.ENODEV : revoked.Code, $"{name} cannot {what} {view}: {revoked.Message}");
        return null;
    }
}
