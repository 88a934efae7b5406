using System.Collections.Concurrent;
using System.Security.Cryptography;
using Fabric.Core;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// The node's exports as its data plane serves them: memory, access, the live remote attachments and their keys.
/// Written by the export actors, read by data-plane connections; thread-safe.
/// </summary>
internal sealed class ExportTable
{
    private readonly ConcurrentDictionary<(int Device, long Export), Entry> _entries = new();

    public sealed class Entry(ExportId id, MemoryBlock block, long size, Access access)
    {
        private volatile FabricError? _ended;

        public ExportId Id { get; } = id;
        public MemoryBlock Block { get; } = block;
        public long Size { get; } = size;
        public Access Access { get; } = access;
        public ConcurrentDictionary<long, byte[]> Attachments { get; } = new();

        /// <summary>Set when the export is revoked or released: transfers stop at the next chunk with this error.</summary>
        public FabricError? Ended => _ended;

        public void End(FabricError reason) => _ended ??= reason;
    }

    public Entry Register(ExportId id, MemoryBlock block, long size, Access access) =>
        _entries[(id.Device.Index, id.Value)] = new Entry(id, block, size, access);

    public void Unregister(ExportId id, FabricError reason)
    {
        if (_entries.TryRemove((id.Device.Index, id.Value), out var entry)) entry.End(reason);
    }

    /// <summary>
    /// The entry a request may use, or the error to answer: an unknown or ended export ENOENT/EIO, a wrong key EPERM,
    /// a write to a read-only export EPERM.
    /// </summary>
    public (Entry? Entry, FabricError? Error) Authorize(int device, long export, long attachment, ReadOnlySpan<byte> key, bool write)
    {
        if (!_entries.TryGetValue((device, export), out var entry))
            return (null, new FabricError(ErrorCode.ENOENT, $"export {export} of device {device} is not served here: it was revoked or released"));
        if (entry.Ended is { } ended) return (null, ended);
        if (!entry.Attachments.TryGetValue(attachment, out var expected) || !CryptographicOperations.FixedTimeEquals(expected, key))
            return (null, new FabricError(ErrorCode.EPERM, $"attachment {attachment} of {entry.Id} is not valid: it was detached, or the key is forged"));
        if (write && (entry.Access & Access.Write) == 0)
            return (null, new FabricError(ErrorCode.EPERM, $"{entry.Id} is exported read-only: writes are refused"));
        return (entry, null);
    }
}
