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

/// <summary>
/// A reserved region [Start, Last] (inclusive) of an address space: a device's reserved region such as its MSI window,
/// or (<paramref name="OutsideAperture"/>) a part of the 64-bit space its aperture does not reach. No mapping may touch
/// it. It stays until its owner is removed with <see cref="IovaMap{T}.Unreserve"/>.
/// </summary>
internal sealed record IovaReservation(ulong Start, ulong Last, object Owner, bool OutsideAperture)
{
    public override string ToString() => OutsideAperture
        ? $"{IovaMap.DescribeInclusive(Start, Last)} outside the aperture of {Owner}"
        : $"{IovaMap.DescribeInclusive(Start, Last)} reserved by {Owner}";
}

internal static class IovaMap
{
    /// <summary>The page size of an address space that no device has narrowed yet.</summary>
    public const ulong HostPageSize = 4096;

    /// <summary>"[0x2000, 0x4000)" — the end is printed as 0x10000000000000000 when the range reaches 2^64.</summary>
    public static string Describe(ulong iova, ulong length) => HalfOpen(iova, (UInt128)iova + length);

    /// <summary>The inclusive range [start, last] printed the way <see cref="Describe"/> prints one.</summary>
    public static string DescribeInclusive(ulong start, ulong last) => HalfOpen(start, (UInt128)last + 1);

    private static string HalfOpen(ulong start, UInt128 end) => $"[0x{start:x}, 0x{end:x})";
}

/// <summary>
/// The mappings of one I/O address space, with iommufd IOAS semantics (drivers/iommu/iommufd/io_pagetable.c): fixed or
/// automatic IOVAs, no replacement of a live mapping, unmaps that must cover whole mappings, lookups that must stay
/// inside one mapping, and the IOVA space narrowed by the devices that join it.
/// <list type="bullet">
/// <item>An address space with no device uses the whole 64-bit space at the host page size. A device joining it
/// narrows it: <see cref="TrySetPageSize"/> to its page size, <see cref="TryLimitAperture(ulong, object, out FabricError?)"/>
/// and <see cref="TryReserve"/> for the IOVAs it cannot reach or must keep free (iommufd's reserved regions). Each
/// refuses with EADDRINUSE, changing nothing, when a live mapping or an allowed range is in the way; a device that
/// leaves widens it again with <see cref="Unreserve"/>. <see cref="UsableRanges"/> is what remains (IOAS_IOVA_RANGES).</item>
/// <item>Reservations of different owners may overlap; an owner is compared with <see cref="object.Equals(object?)"/>.</item>
/// <item>Allowed ranges (IOAS_ALLOW_IOVAS) confine automatic IOVAs only; a fixed IOVA may lie outside them, as in iommufd.</item>
/// <item>An automatic IOVA is never 0 (a fixed one may be), and is aligned to the length rounded up to a power of two,
/// at least a page.</item>
/// </list>
/// Not thread-safe: the actor that owns the address space is its only user.
/// </summary>
internal sealed class IovaMap<T>
{
    // Keyed by IOVA; mappings never overlap, so lookups are binary searches over the keys.
    private readonly SortedList<ulong, IovaMapping<T>> _map = [];
    private readonly ReadOnlyCollection<IovaMapping<T>> _view;

    // Every reservation ordered by start, and the same merged into disjoint, non-adjacent spans for binary searches.
    private ImmutableArray<IovaReservation> _reservations = [];
    private ImmutableArray<(ulong Start, ulong Last)> _reservedSpans = [];

    // The allowed ranges as given (sorted, disjoint), and merged where they touch: an automatic IOVA may run across
    // two adjacent allowed ranges.
    private ImmutableArray<(ulong Start, ulong Last)> _allowed = [];
    private ImmutableArray<(ulong Start, ulong Last)> _allowedSpans = [];

    // Every byte in [PageSize, _lowestFree) is mapped, reserved, or outside the allowed ranges, so an automatic IOVA is
    // never below it: a space that fills up from the bottom (the usual case) finds its next free range at once instead
    // of walking every mapping. A change that may free IOVAs (unmap, unreserve, new allowed ranges, a new page size)
    // moves it back down.
    private ulong _lowestFree;

    /// <param name="name">How error sentences name this space, e.g. "address space as-3 of ctx-2".</param>
    /// <param name="pageSize">Granule of map lengths and fixed IOVAs; a power of two.</param>
    public IovaMap(string name, ulong pageSize = IovaMap.HostPageSize)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (!IsPowerOfTwo(pageSize))
            throw new ArgumentOutOfRangeException(nameof(pageSize), pageSize, "the page size must be a power of two");
        Name = name;
        PageSize = pageSize;
        _view = _map.Values.AsReadOnly();
        _lowestFree = pageSize;
        UsableRanges = [(0, ulong.MaxValue)];
    }

    public string Name { get; }

    /// <summary>Granule of map lengths and fixed IOVAs, and the alignment that goes with <see cref="UsableRanges"/>.</summary>
    public ulong PageSize { get; private set; }

    /// <summary>Live mappings ordered by IOVA (a live view).</summary>
    public IReadOnlyCollection<IovaMapping<T>> Mappings => _view;

    public int Count => _map.Count;

    public ulong MappedBytes { get; private set; }

    /// <summary>
    /// The IOVAs a mapping may use: the complement of the reserved regions over [0, 2^64), as inclusive ranges in
    /// order. The whole space while nothing is reserved; empty when everything is.
    /// </summary>
    public ImmutableArray<(ulong Start, ulong Last)> UsableRanges { get; private set; }

    /// <summary>The reserved regions ordered by start.</summary>
    public ImmutableArray<IovaReservation> Reservations => _reservations;

    /// <summary>The allowed ranges ordered by start; empty when automatic IOVAs may come from any usable range.</summary>
    public ImmutableArray<(ulong Start, ulong Last)> AllowedRanges => _allowed;

    /// <summary>
    /// Maps length bytes at a fixed IOVA, or (iova null) at the lowest free IOVA aligned to the length rounded up to a
    /// power of two (at least a page), never at IOVA 0, outside every reserved region and, while allowed ranges are
    /// set, inside them. In iommufd's order: unknown access bits, length 0, a wrap past 2^64 (EOVERFLOW), no read and
    /// no write, a length or IOVA off the page size, a reserved region touched (all EINVAL but the wrap), a live mapping
    /// overlapped (EEXIST); no free range (ENOSPC).
    /// </summary>
    public bool TryMap(ulong? iova, ulong length, Access access, T value, out ulong mappedAt, out FabricError? error)
    {
        mappedAt = 0;
        string what = iova is { } at ? Describe(at, length) : $"0x{length:x} bytes";
        if ((access & ~Access.ReadWrite) != 0)
            return Fail(ErrorCode.EINVAL, $"cannot map {what} in {Name}: unknown access bits 0x{(int)access:x}", out error);
        if (length == 0)
            return Fail(ErrorCode.EINVAL, $"cannot map {what} in {Name}: the length is 0", out error);
        ulong last = 0;
        if (iova is { } wrapping && !TryLast(wrapping, length, out last))
            return Fail(ErrorCode.EOVERFLOW, $"cannot map {what} in {Name}: the range wraps past 2^64", out error);
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
            if (FirstReservation(fixedIova, last) is { } reserved)
                return Fail(ErrorCode.EINVAL, $"cannot map {what} in {Name}: it touches {reserved}", out error);
            if (FirstOverlap(fixedIova, last) is { } conflict)
                return Fail(ErrorCode.EEXIST, $"cannot map {what} in {Name}: it overlaps the mapping {conflict}", out error);
            start = fixedIova;
        }
        else if (!TryFindFree(length, out start))
        {
            string where = _allowed.IsEmpty ? "in its usable ranges" : "in its allowed ranges";
            return Fail(ErrorCode.ENOSPC, $"cannot map {what} in {Name}: no free range of that size and alignment {where}",
                out error);
        }

        _map.Add(start, new IovaMapping<T>(start, length, access, value));
        MappedBytes += length;
        mappedAt = start;
        AdvanceLowestFree();
        error = null;
        return true;
    }

    /// <summary>
    /// Removes every mapping inside [iova, iova + length). The range must not wrap past 2^64 (EOVERFLOW), must not cut
    /// through any mapping, must hold at least one mapping (except the unmap-all pair iova 0, length
    /// <see cref="ulong.MaxValue"/>), and the veto must accept every mapping in it; otherwise nothing changes.
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

    /// <summary>
    /// The source side of IOAS_COPY (iopt_get_pages): the pieces of the mappings that together cover exactly
    /// [iova, iova + length) in IOVA order, each a mapping with the offset and length used from it. Several adjacent
    /// mappings may share the range; an unmapped start or a hole fails with ENOENT, length 0 with EINVAL, a wrap with
    /// EOVERFLOW. Access is not checked: the caller decides what the pieces may be used for.
    /// </summary>
    public bool TryGetCovering(ulong iova, ulong length,
        out ImmutableArray<(IovaMapping<T> Mapping, ulong OffsetInMapping, ulong Length)> pieces, out FabricError? error)
    {
        pieces = [];
        string what = Describe(iova, length);
        if (length == 0)
            return Fail(ErrorCode.EINVAL, $"cannot copy from {what} in {Name}: the length is 0", out error);
        if (!TryLast(iova, length, out ulong last))
            return Fail(ErrorCode.EOVERFLOW, $"cannot copy from {what} in {Name}: the range wraps past 2^64", out error);

        int i = FloorIndex(iova);
        if (i < 0 || _map.GetValueAtIndex(i).Last < iova)
            return Fail(ErrorCode.ENOENT, $"cannot copy from {what} in {Name}: IOVA 0x{iova:x} is not mapped", out error);

        var builder = ImmutableArray.CreateBuilder<(IovaMapping<T>, ulong, ulong)>();
        ulong cur = iova;
        while (true)
        {
            IovaMapping<T> m = _map.GetValueAtIndex(i);
            ulong pieceLast = Math.Min(last, m.Last);
            builder.Add((m, cur - m.Iova, pieceLast - cur + 1));
            if (pieceLast == last)
                break;
            cur = m.Last + 1; // m.Last < last, so no overflow
            i++;
            if (i == _map.Count || _map.GetValueAtIndex(i).Iova != cur)
                return Fail(ErrorCode.ENOENT,
                    $"cannot copy from {what} in {Name}: IOVA 0x{cur:x} after the mapping {m} is not mapped", out error);
        }
        pieces = builder.ToImmutable();
        error = null;
        return true;
    }

    /// <summary>
    /// Changes the page size, as a device joining or leaving does (iopt_check_iova_alignment). Not a power of two →
    /// EINVAL; a live mapping whose IOVA or length is not a multiple of the new size → EADDRINUSE. Either way nothing
    /// changes.
    /// </summary>
    public bool TrySetPageSize(ulong pageSize, out FabricError? error)
    {
        if (!IsPowerOfTwo(pageSize))
            return Fail(ErrorCode.EINVAL, $"cannot set the page size of {Name} to 0x{pageSize:x}: it is not a power of two",
                out error);
        foreach (IovaMapping<T> m in _map.Values)
        {
            if (m.Iova % pageSize != 0 || m.Length % pageSize != 0)
                return Fail(ErrorCode.EADDRINUSE,
                    $"cannot set the page size of {Name} to 0x{pageSize:x}: the mapping {m} is not aligned to it", out error);
        }
        if (pageSize != PageSize)
        {
            PageSize = pageSize;
            ResetLowestFree();
        }
        error = null;
        return true;
    }

    /// <summary>
    /// Reserves [start, last] (inclusive) for owner, such as a device's MSI window (iopt_reserve_iova). start above
    /// last → EINVAL; a live mapping or an allowed range in it → EADDRINUSE, and nothing changes.
    /// </summary>
    public bool TryReserve(ulong start, ulong last, object owner, out FabricError? error)
    {
        ArgumentNullException.ThrowIfNull(owner);
        string what = $"cannot reserve {IovaMap.DescribeInclusive(start, last)} in {Name} for {owner}";
        if (start > last)
            return Fail(ErrorCode.EINVAL, $"{what}: its start 0x{start:x} is above its last IOVA 0x{last:x}", out error);
        return TryAddReservations([(start, last)], owner, outsideAperture: false, what, out error);
    }

    /// <summary>Limits the aperture to [0, last]: reserves [last + 1, 2^64) for owner, as <see cref="TryReserve"/> does.</summary>
    public bool TryLimitAperture(ulong last, object owner, out FabricError? error) => TryLimitAperture(0, last, owner, out error);

    /// <summary>
    /// Limits the aperture to [first, last]: reserves the IOVAs below first and above last for owner, as
    /// <see cref="TryReserve"/> does, all or nothing. first above last → EINVAL.
    /// </summary>
    public bool TryLimitAperture(ulong first, ulong last, object owner, out FabricError? error)
    {
        ArgumentNullException.ThrowIfNull(owner);
        string what = $"cannot limit {Name} to the aperture {IovaMap.DescribeInclusive(first, last)} of {owner}";
        if (first > last)
            return Fail(ErrorCode.EINVAL, $"{what}: its start 0x{first:x} is above its last IOVA 0x{last:x}", out error);
        var outside = new List<(ulong Start, ulong Last)>(2);
        if (first > 0)
            outside.Add((0, first - 1));
        if (last < ulong.MaxValue)
            outside.Add((last + 1, ulong.MaxValue));
        return TryAddReservations(outside, owner, outsideAperture: true, what, out error);
    }

    /// <summary>Removes every reserved region of owner (a device leaving widens the space); none is not an error.</summary>
    public void Unreserve(object owner)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ImmutableArray<IovaReservation> kept = _reservations.RemoveAll(r => Equals(r.Owner, owner));
        if (kept.Length == _reservations.Length)
            return;
        _reservations = kept;
        ReservationsChanged();
        ResetLowestFree();
    }

    /// <summary>
    /// Replaces the allowed ranges (IOAS_ALLOW_IOVAS); an empty list clears them. While some are set, automatic IOVAs
    /// come only from inside them. A range whose start is above its last IOVA, or two ranges that overlap → EINVAL; a
    /// range that touches a reserved region → EADDRINUSE. Either way nothing changes.
    /// </summary>
    public bool TrySetAllowed(IReadOnlyList<(ulong Start, ulong Last)> ranges, out FabricError? error)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        foreach ((ulong start, ulong last) in ranges)
        {
            if (start > last)
                return Fail(ErrorCode.EINVAL,
                    $"cannot allow IOVAs in {Name}: the range from 0x{start:x} to 0x{last:x} ends before it starts", out error);
        }
        ImmutableArray<(ulong Start, ulong Last)> sorted = [.. ranges.OrderBy(r => r.Start).ThenBy(r => r.Last)];
        for (int i = 1; i < sorted.Length; i++)
        {
            if (sorted[i].Start <= sorted[i - 1].Last)
                return Fail(ErrorCode.EINVAL,
                    $"cannot allow {IovaMap.DescribeInclusive(sorted[i].Start, sorted[i].Last)} in {Name}: " +
                    $"it overlaps the range {IovaMap.DescribeInclusive(sorted[i - 1].Start, sorted[i - 1].Last)} of the same list",
                    out error);
        }
        foreach ((ulong start, ulong last) in sorted)
        {
            if (FirstReservation(start, last) is { } reserved)
                return Fail(ErrorCode.EADDRINUSE,
                    $"cannot allow {IovaMap.DescribeInclusive(start, last)} in {Name}: it touches {reserved}", out error);
        }
        _allowed = sorted;
        _allowedSpans = Merge(sorted);
        ResetLowestFree();
        error = null;
        return true;
    }

    private bool TryAddReservations(IReadOnlyList<(ulong Start, ulong Last)> regions, object owner, bool outsideAperture,
        string what, out FabricError? error)
    {
        foreach ((ulong start, ulong last) in regions)
        {
            if (FirstOverlap(start, last) is { } mapping)
                return Fail(ErrorCode.EADDRINUSE,
                    outsideAperture ? $"{what}: the mapping {mapping} lies outside it" : $"{what}: it overlaps the mapping {mapping}",
                    out error);
            if (FirstIntersecting(_allowed, start, last) is { } allowed)
            {
                string range = $"the allowed range {IovaMap.DescribeInclusive(allowed.Start, allowed.Last)}";
                return Fail(ErrorCode.EADDRINUSE, outsideAperture ? $"{what}: {range} lies outside it" : $"{what}: it overlaps {range}",
                    out error);
            }
        }
        if (regions.Count > 0)
        {
            ImmutableArray<IovaReservation>.Builder builder = _reservations.ToBuilder();
            foreach ((ulong start, ulong last) in regions)
            {
                // After the reservations starting at or below start, so that the order is stable.
                int at = 0;
                while (at < builder.Count && builder[at].Start <= start)
                    at++;
                builder.Insert(at, new IovaReservation(start, last, owner, outsideAperture));
            }
            _reservations = builder.ToImmutable();
            ReservationsChanged();
            AdvanceLowestFree();
        }
        error = null;
        return true;
    }

    private void ReservationsChanged()
    {
        _reservedSpans = Merge([.. _reservations.Select(r => (r.Start, r.Last))]);
        var usable = ImmutableArray.CreateBuilder<(ulong Start, ulong Last)>(_reservedSpans.Length + 1);
        ulong next = 0;
        bool reachesTop = false;
        foreach ((ulong start, ulong last) in _reservedSpans)
        {
            if (start > next)
                usable.Add((next, start - 1));
            if (last == ulong.MaxValue)
            {
                reachesTop = true;
                break;
            }
            next = last + 1;
        }
        if (!reachesTop)
            usable.Add((next, ulong.MaxValue));
        UsableRanges = usable.ToImmutable();
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
        MappedBytes = 0;
        ResetLowestFree();
        error = null;
        return true;
    }

    // Lowest IOVA, aligned to the length's power-of-two ceiling (at least a page) and never 0, where length bytes fit
    // inside one allowed span (when there are any) without touching a reserved region or a mapping. Every obstacle
    // moves the candidate to the first aligned IOVA past it, so the search only goes up.
    private bool TryFindFree(ulong length, out ulong start)
    {
        start = 0;
        if (length > 1UL << 63)
            return false; // its alignment would be 2^64: only IOVA 0, which is never handed out
        ulong align = Math.Max(PageSize, BitOperations.RoundUpToPowerOf2(length));
        if (!TryAlignUp(Math.Max(_lowestFree, align), align, out ulong candidate))
            return false;
        while (true)
        {
            if (!TryLast(candidate, length, out ulong last))
                return false;
            if (!_allowedSpans.IsEmpty)
            {
                int a = FirstEndingAtOrAfter(_allowedSpans, candidate);
                if (a == _allowedSpans.Length)
                    return false;
                if (_allowedSpans[a].Start > candidate)
                {
                    if (!TryAlignUp(_allowedSpans[a].Start, align, out candidate))
                        return false;
                    continue;
                }
                if (_allowedSpans[a].Last < last)
                {
                    // Spans do not touch, so the range cannot run on into the next one: start over inside it.
                    if (a + 1 == _allowedSpans.Length || !TryAlignUp(_allowedSpans[a + 1].Start, align, out candidate))
                        return false;
                    continue;
                }
            }
            int r = FirstEndingAtOrAfter(_reservedSpans, candidate);
            if (r < _reservedSpans.Length && _reservedSpans[r].Start <= last)
            {
                if (!TryAlignPast(_reservedSpans[r].Last, align, out candidate))
                    return false;
                continue;
            }
            if (FirstOverlap(candidate, last) is { } mapping)
            {
                if (!TryAlignPast(mapping.Last, align, out candidate))
                    return false;
                continue;
            }
            start = candidate;
            return true;
        }
    }

    // Moves _lowestFree past whatever stands at it: a mapping, a reserved span, or (with allowed ranges) a gap before
    // the next allowed span.
    private void AdvanceLowestFree()
    {
        while (true)
        {
            ulong at = _lowestFree;
            if (!_allowedSpans.IsEmpty)
            {
                int a = FirstEndingAtOrAfter(_allowedSpans, at);
                if (a == _allowedSpans.Length)
                {
                    _lowestFree = ulong.MaxValue; // nothing at or above is allowed
                    return;
                }
                if (_allowedSpans[a].Start > at)
                {
                    _lowestFree = _allowedSpans[a].Start;
                    continue;
                }
            }
            ulong blockedTo;
            int r = FirstEndingAtOrAfter(_reservedSpans, at);
            if (r < _reservedSpans.Length && _reservedSpans[r].Start <= at)
                blockedTo = _reservedSpans[r].Last;
            else if (FloorIndex(at) is var i && i >= 0 && _map.GetValueAtIndex(i).Last >= at)
                blockedTo = _map.GetValueAtIndex(i).Last;
            else
                return;
            if (blockedTo == ulong.MaxValue)
            {
                _lowestFree = ulong.MaxValue; // taken to the very top: nothing above is free
                return;
            }
            _lowestFree = blockedTo + 1;
        }
    }

    private void ResetLowestFree()
    {
        _lowestFree = PageSize;
        AdvanceLowestFree();
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

    // The reservation with the lowest start that touches [start, last], if any.
    private IovaReservation? FirstReservation(ulong start, ulong last)
    {
        if (FirstIntersecting(_reservedSpans, start, last) is null)
            return null;
        foreach (IovaReservation r in _reservations)
        {
            if (r.Start <= last && r.Last >= start)
                return r;
        }
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

    // In ranges sorted by start and disjoint (so also sorted by last): the first range touching [start, last], if any.
    private static (ulong Start, ulong Last)? FirstIntersecting(ImmutableArray<(ulong Start, ulong Last)> ranges, ulong start,
        ulong last)
    {
        int i = FirstEndingAtOrAfter(ranges, start);
        return i < ranges.Length && ranges[i].Start <= last ? ranges[i] : null;
    }

    // In ranges sorted by start and disjoint: the index of the first one whose last IOVA is at or above iova, or the length.
    private static int FirstEndingAtOrAfter(ImmutableArray<(ulong Start, ulong Last)> ranges, ulong iova)
    {
        int lo = 0, hi = ranges.Length;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (ranges[mid].Last < iova)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    }

    // Ranges sorted by start (possibly overlapping) merged into disjoint spans that do not touch.
    private static ImmutableArray<(ulong Start, ulong Last)> Merge(ImmutableArray<(ulong Start, ulong Last)> sorted)
    {
        var spans = ImmutableArray.CreateBuilder<(ulong Start, ulong Last)>(sorted.Length);
        foreach ((ulong start, ulong last) in sorted)
        {
            if (spans.Count > 0 && (spans[^1].Last == ulong.MaxValue || start <= spans[^1].Last + 1))
                spans[^1] = (spans[^1].Start, Math.Max(spans[^1].Last, last));
            else
                spans.Add((start, last));
        }
        return spans.ToImmutable();
    }

    private static bool IsPowerOfTwo(ulong value) => value != 0 && BitOperations.IsPow2(value);

    private static bool TryAlignUp(ulong iova, ulong align, out ulong aligned)
    {
        aligned = 0;
        if (iova > ulong.MaxValue - (align - 1))
            return false;
        aligned = (iova + (align - 1)) & ~(align - 1);
        return true;
    }

    // The first aligned IOVA after last.
    private static bool TryAlignPast(ulong last, ulong align, out ulong aligned)
    {
        aligned = 0;
        return last != ulong.MaxValue && TryAlignUp(last + 1, align, out aligned);
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
