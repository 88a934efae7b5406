using System.Collections.Immutable;
using System.Collections.ObjectModel;
using System.Numerics;
using Fabric.Core;

namespace Fabric.Devices.Internal.Memory;

/// <summary>One mapping of an I/O address space: [Iova, Iova + Length) with its permissions and what backs it.</summary>
internal sealed record IovaMapping<T>(ulong Iova, ulong Length, Access Access, T Value)
{
    /// <summary>Last byte of the mapping (inclusive), so a mapping may end exactly at 2^64 without overflow.</summary>
    public ulong Last => Iova + (Length - 1);

    public override string ToString() => IovaMap.Describe(Iova, Length);
}

internal static class IovaMap
{
    /// <summary>"[0x2000, 0x4000)" — the end is printed as 0x10000000000000000 when the range reaches 2^64.</summary>
    public static string Describe(ulong iova, ulong length)
    {
        UInt128 end = (UInt128)iova + length;
        return $"[0x{iova:x}, 0x{end:x})";
    }
}

/// <summary>
/// The mappings of one I/O address space, with iommufd IOAS semantics: fixed or automatic IOVAs, no replacement of
/// a live mapping, unmaps that must cover whole mappings, and lookups that must stay inside one mapping.
/// Not thread-safe: the actor that owns the address space is its only user.
/// </summary>
internal sealed class IovaMap<T>
{
    // Keyed by IOVA; mappings never overlap, so lookups are binary searches over the keys.
    private readonly SortedList<ulong, IovaMapping<T>> _map = [];
    private readonly ReadOnlyCollection<IovaMapping<T>> _view;

    // Every page in [PageSize, _lowestFree) is mapped, so an automatic IOVA is never below it: a space that fills up
    // from the bottom (the usual case) finds its next free range at once instead of walking every mapping.
    private ulong _lowestFree;

    /// <param name="name">How error sentences name this space, e.g. "address space as-3 of ctx-2".</param>
    /// <param name="pageSize">Granule of map lengths and fixed IOVAs; a power of two.</param>
    /// <param name="limit">Exclusive end of the usable IOVA range.</param>
    public IovaMap(string name, ulong pageSize, ulong limit = 1UL << 48)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (pageSize == 0 || !BitOperations.IsPow2(pageSize))
            throw new ArgumentOutOfRangeException(nameof(pageSize), pageSize, "the page size must be a power of two");
        if (limit < pageSize)
            throw new ArgumentOutOfRangeException(nameof(limit), limit, "the limit must be at least one page");
        Name = name;
        PageSize = pageSize;
        Limit = limit;
        _view = _map.Values.AsReadOnly();
        _lowestFree = pageSize;
    }

    public string Name { get; }
    public ulong PageSize { get; }
    public ulong Limit { get; }

    /// <summary>Live mappings ordered by IOVA (a live view).</summary>
    public IReadOnlyCollection<IovaMapping<T>> Mappings => _view;

    public int Count => _map.Count;

    public ulong MappedBytes { get; private set; }

    /// <summary>
    /// Maps length bytes at a fixed IOVA, or (iova null) at the lowest free IOVA aligned to the length rounded up to a
    /// power of two (at least a page), never at IOVA 0.
    /// </summary>
    public bool TryMap(ulong? iova, ulong length, Access access, T value, out ulong mappedAt, out FabricError? error)
    {
        mappedAt = 0;
        string what = iova is { } at ? Describe(at, length) : $"0x{length:x} bytes";
        if (length == 0)
            return Fail(ErrorCode.EINVAL, $"cannot map {what} in {Name}: the length is 0", out error);
        if ((access & ~Access.ReadWrite) != 0)
            return Fail(ErrorCode.EINVAL, $"cannot map {what} in {Name}: unknown access bits 0x{(int)access:x}", out error);
        if ((access & Access.ReadWrite) == 0)
            return Fail(ErrorCode.EINVAL, $"cannot map {what} in {Name}: the access allows neither read nor write", out error);
        if (length % PageSize != 0)
            return Fail(ErrorCode.EINVAL,
                $"cannot map {what} in {Name}: the length is not a multiple of the page size 0x{PageSize:x}", out error);

        ulong start;
        if (iova is { } fixedIova)
        {
            if (fixedIova % PageSize != 0)
                return Fail(ErrorCode.EINVAL,
                    $"cannot map {what} in {Name}: the IOVA is not a multiple of the page size 0x{PageSize:x}", out error);
            if (!TryLast(fixedIova, length, out ulong last))
                return Fail(ErrorCode.EOVERFLOW, $"cannot map {what} in {Name}: the range wraps past 2^64", out error);
            if (last >= Limit)
                return Fail(ErrorCode.EOVERFLOW,
                    $"cannot map {what} in {Name}: the range runs past the end of the address space at 0x{Limit:x}", out error);
            if (FirstOverlap(fixedIova, last) is { } conflict)
                return Fail(ErrorCode.EEXIST, $"cannot map {what} in {Name}: it overlaps the mapping {conflict}", out error);
            start = fixedIova;
        }
        else if (!TryFindFree(length, out start))
        {
            return Fail(ErrorCode.ENOSPC,
                $"cannot map {what} in {Name}: no free range of that size and alignment below 0x{Limit:x}", out error);
        }

        _map.Add(start, new IovaMapping<T>(start, length, access, value));
        MappedBytes += length;
        mappedAt = start;
        AdvanceLowestFree();
        error = null;
        return true;
    }

    /// <summary>
    /// Removes every mapping inside [iova, iova + length). The range must not cut through any mapping, must hold at
    /// least one mapping (except the unmap-all pair iova 0, length <see cref="ulong.MaxValue"/>), and the veto must
    /// accept every mapping in it; otherwise nothing changes.
    /// </summary>
    public bool TryUnmap(ulong iova, ulong length, out ulong unmappedBytes, out ImmutableArray<IovaMapping<T>> removed,
        out FabricError? error, Func<IovaMapping<T>, FabricError?>? veto = null)
    {
        unmappedBytes = 0;
        removed = [];
        if (iova == 0 && length == ulong.MaxValue)
            return UnmapAll(out unmappedBytes, out removed, out error, veto);

        string what = Describe(iova, length);
        if (length == 0)
            return Fail(ErrorCode.EINVAL, $"cannot unmap {what} in {Name}: the length is 0", out error);
        if (!TryLast(iova, length, out ulong last))
            return Fail(ErrorCode.EOVERFLOW, $"cannot unmap {what} in {Name}: the range wraps past 2^64", out error);

        // The mapping holding iova, if any, must start exactly at iova.
        int first = FloorIndex(iova);
        if (first >= 0)
        {
            IovaMapping<T> m = _map.GetValueAtIndex(first);
            if (m.Last >= iova && m.Iova < iova)
                return Fail(ErrorCode.ENOENT, $"cannot unmap {what} in {Name}: it would split the mapping {m}", out error);
            if (m.Iova < iova)
                first++;
        }
        else
        {
            first = 0;
        }

        int end = first; // exclusive index of the mappings inside the range
        ulong bytes = 0;
        while (end < _map.Count)
        {
            IovaMapping<T> m = _map.GetValueAtIndex(end);
            if (m.Iova > last)
                break;
            if (m.Last > last)
                return Fail(ErrorCode.ENOENT, $"cannot unmap {what} in {Name}: it would truncate the mapping {m}", out error);
            bytes += m.Length;
            end++;
        }
        if (end == first)
            return Fail(ErrorCode.ENOENT, $"cannot unmap {what} in {Name}: no mapping lies in that range", out error);

        if (veto is not null)
        {
            for (int i = first; i < end; i++)
            {
                if (veto(_map.GetValueAtIndex(i)) is { } refused)
                {
                    error = refused;
                    return false;
                }
            }
        }

        var builder = ImmutableArray.CreateBuilder<IovaMapping<T>>(end - first);
        for (int i = first; i < end; i++)
            builder.Add(_map.GetValueAtIndex(i));
        for (int i = end - 1; i >= first; i--)
            _map.RemoveAt(i);
        Freed(builder[0].Iova);
        MappedBytes -= bytes;
        unmappedBytes = bytes;
        removed = builder.MoveToImmutable();
        error = null;
        return true;
    }

    /// <summary>
    /// Finds the one mapping holding all of [iova, iova + length) and checks that it grants the needed access.
    /// </summary>
    public bool TryResolve(ulong iova, ulong length, Access needed, out IovaMapping<T>? mapping, out ulong offsetInMapping,
        out FabricError? error)
    {
        mapping = null;
        offsetInMapping = 0;
        string what = Describe(iova, length);
        if (length == 0)
            return Fail(ErrorCode.EINVAL, $"cannot access {what} in {Name}: the length is 0", out error);
        if (!TryLast(iova, length, out ulong last))
            return Fail(ErrorCode.EOVERFLOW, $"cannot access {what} in {Name}: the range wraps past 2^64", out error);

        int i = FloorIndex(iova);
        IovaMapping<T>? m = i >= 0 ? _map.GetValueAtIndex(i) : null;
        if (m is null || m.Last < iova)
            return Fail(ErrorCode.ENOENT, $"cannot access {what} in {Name}: IOVA 0x{iova:x} is not mapped", out error);
        if (last > m.Last)
            return Fail(ErrorCode.ENOENT, $"cannot access {what} in {Name}: it runs past the end of the mapping {m}", out error);
        if ((needed & Access.Write) != 0 && (m.Access & Access.Write) == 0)
            return Fail(ErrorCode.EPERM, $"cannot write {what} in {Name}: the mapping {m} is read-only", out error);
        if ((needed & Access.Read) != 0 && (m.Access & Access.Read) == 0)
            return Fail(ErrorCode.EPERM, $"cannot read {what} in {Name}: the mapping {m} is write-only", out error);

        mapping = m;
        offsetInMapping = iova - m.Iova;
        error = null;
        return true;
    }

    private bool UnmapAll(out ulong unmappedBytes, out ImmutableArray<IovaMapping<T>> removed, out FabricError? error,
        Func<IovaMapping<T>, FabricError?>? veto)
    {
        unmappedBytes = 0;
        removed = [];
        if (veto is not null)
        {
            foreach (IovaMapping<T> m in _map.Values)
            {
                if (veto(m) is { } refused)
                {
                    error = refused;
                    return false;
                }
            }
        }
        removed = [.. _map.Values];
        unmappedBytes = MappedBytes;
        _map.Clear();
        _lowestFree = PageSize;
        MappedBytes = 0;
        error = null;
        return true;
    }

    // Lowest IOVA, aligned to the length's power-of-two ceiling (at least a page) and never 0, where length bytes fit
    // below the limit without touching a mapping.
    private bool TryFindFree(ulong length, out ulong start)
    {
        start = 0;
        if (length > 1UL << 63)
            return false; // its alignment would be 2^64: only IOVA 0, which is never handed out
        ulong align = Math.Max(PageSize, BitOperations.RoundUpToPowerOf2(length));
        if (_lowestFree > ulong.MaxValue - (align - 1))
            return false;
        ulong candidate = Math.Max(align, (_lowestFree + (align - 1)) & ~(align - 1));
        int i = Math.Max(FloorIndex(candidate), 0);
        while (true)
        {
            if (!TryLast(candidate, length, out ulong last) || last >= Limit)
                return false;
            // Skip the mappings that end before the candidate.
            while (i < _map.Count && _map.GetValueAtIndex(i).Last < candidate)
                i++;
            if (i == _map.Count || _map.GetValueAtIndex(i).Iova > last)
            {
                start = candidate;
                return true;
            }
            // The mapping at i overlaps the candidate: try the first aligned IOVA after its end.
            ulong blockerLast = _map.GetValueAtIndex(i).Last;
            if (blockerLast > ulong.MaxValue - align)
                return false;
            candidate = (blockerLast + align) & ~(align - 1);
            i++;
        }
    }

    // After a map: moves _lowestFree past the mappings that now start at it (or cover it).
    private void AdvanceLowestFree()
    {
        int i = FloorIndex(_lowestFree);
        if (i < 0) i = 0;
        while (i < _map.Count)
        {
            IovaMapping<T> m = _map.GetValueAtIndex(i);
            if (m.Iova > _lowestFree)
                return;
            if (m.Last >= _lowestFree)
            {
                if (m.Last == ulong.MaxValue)
                {
                    _lowestFree = ulong.MaxValue; // mapped to the very top: nothing above is free
                    return;
                }
                _lowestFree = m.Last + 1;
            }
            i++;
        }
    }

    // After an unmap starting at iova: its pages are free again.
    private void Freed(ulong iova) => _lowestFree = Math.Min(_lowestFree, Math.Max(iova, PageSize));

    // The first (lowest) mapping overlapping [iova, last], if any.
    private IovaMapping<T>? FirstOverlap(ulong iova, ulong last)
    {
        int i = FloorIndex(iova);
        if (i >= 0 && _map.GetValueAtIndex(i).Last >= iova)
            return _map.GetValueAtIndex(i);
        i++;
        if (i < _map.Count && _map.GetValueAtIndex(i).Iova <= last)
            return _map.GetValueAtIndex(i);
        return null;
    }

    // Index of the mapping with the greatest IOVA <= iova, or -1.
    private int FloorIndex(ulong iova)
    {
        IList<ulong> keys = _map.Keys;
        int lo = 0, hi = keys.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (keys[mid] <= iova)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found;
    }

    private static bool TryLast(ulong iova, ulong length, out ulong last)
    {
        last = iova + (length - 1);
        return last >= iova;
    }

    private static string Describe(ulong iova, ulong length) => IovaMap.Describe(iova, length);

    private static bool Fail(ErrorCode code, string message, out FabricError? error)
    {
        error = new FabricError(code, message);
        return false;
    }
}
