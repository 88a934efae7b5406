using System.Collections.Immutable;
using System.Numerics;
using CsCheck;
using Fabric.Core;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Tests.Memory;

/// <summary>
/// Random sequences of maps, unmaps, lookups, reservations, apertures, allowed ranges and page size changes, checked
/// against a naive model: plain lists of ranges searched exhaustively, in 128-bit arithmetic.
/// </summary>
public class IovaMapPropertyTests
{
    private const ulong P = 0x1000;
    private const string Space = "address space as-9 of ctx-1";
    private static readonly UInt128 TwoTo64 = (UInt128)ulong.MaxValue + 1;
    private static readonly string[] Owners = ["dev-a", "dev-b", "dev-c"];

    private enum Kind { MapFixed, MapAuto, Unmap, Resolve, Cover, Reserve, Aperture, Unreserve, Allow, PageSize }

    // Reserve, Aperture and Allow take their inclusive ranges from Ranges (an aperture's is [first, last]); PageSize
    // takes its size from Length.
    private sealed record Op(Kind Kind, ulong Iova, ulong Length, Access Access, bool Veto, int Owner,
        ImmutableArray<(ulong Start, ulong Last)> Ranges)
    {
        public override string ToString() => Kind switch
        {
            Kind.Reserve or Kind.Aperture => $"{Kind}({Owners[Owner]}, {Listed()})",
            Kind.Allow => $"{Kind}({Listed()})",
            Kind.Unreserve => $"{Kind}({Owners[Owner]})",
            Kind.PageSize => $"{Kind}(0x{Length:x})",
            _ => $"{Kind}(0x{Iova:x}, 0x{Length:x}, {Access}{(Veto ? ", veto" : "")})",
        };

        private string Listed() => $"[{string.Join(", ", Ranges.Select(r => $"0x{r.Start:x}..0x{r.Last:x}"))}]";
    }

    // Mostly well-formed operations on a small region (so that overlaps, holes, reservations and exhaustion meet often),
    // with a sprinkling of malformed ones: zero lengths, unaligned values, unknown or no access, wrapping ranges, ranges
    // that end before they start, page sizes that are not powers of two.
    private static Op MakeOp(int kind, int a, int b, int c, int d, int weird)
    {
        ulong iova = (ulong)(a % 70) * P;
        ulong length = (ulong)(b % 9 + 1) * P;
        var access = (Access)(c % 3 + 1);
        bool veto = c % 2 == 0;
        int owner = d % Owners.Length;
        switch (kind % 20)
        {
            case <= 4:
                switch (weird)
                {
                    case 0: length = 0; break;
                    case 1: iova += 0x800; break;
                    case 2: length += 0x200; break;
                    case 3: access = Access.None; break;
                    case 4: iova = ulong.MaxValue - P + 1; break;
                    case 5: access |= (Access)4; break;
                    case 6: iova = ulong.MaxValue - P + 0x801; access = Access.None; break;
                }
                return new Op(Kind.MapFixed, iova, length, access, false, 0, []);
            case <= 7:
                switch (weird)
                {
                    case 0: length = 0; break;
                    case 2: length += 0x200; break;
                    case 3: access = Access.None; break;
                    case 5: access = (Access)4; break;
                    case 6: length = (1UL << 63) + P; break;
                    case 7: length = 40 * P; break;
                }
                return new Op(Kind.MapAuto, 0, length, access, false, 0, []);
            case <= 10:
                switch (weird)
                {
                    case 0: length = 0; break;
                    case 1: iova += 0x800; break;
                    case 4: iova = ulong.MaxValue - P + 1; length += P; break;
                    case 7 or 8: iova = 0; length = ulong.MaxValue; break;
                    case 9: length += 0x10; break;
                }
                return new Op(Kind.Unmap, iova, length, Access.None, veto, 0, []);
            case <= 12:
                {
                    ulong at = (ulong)a * 97 % (66 * P);
                    ulong len = weird == 0 ? 0 : (ulong)b * 31 % (3 * P);
                    if (weird == 4)
                        len = ulong.MaxValue;
                    return new Op(Kind.Resolve, at, len, (Access)(c % 4), false, 0, []);
                }
            case <= 14:
                {
                    ulong at = (ulong)a * 97 % (66 * P);
                    ulong len = weird == 0 ? 0 : (ulong)b * 131 % (12 * P);
                    if (weird == 4)
                        len = ulong.MaxValue;
                    return new Op(Kind.Cover, at, len, Access.None, false, 0, []);
                }
            case <= 16:
                {
                    ulong start = iova + (weird == 1 ? 0x800UL : 0);
                    ulong last = start + (ulong)(b % 4) * P + (P - 1);
                    if (weird == 2)
                        last = start - 1; // ends before it starts, or (from 0) the whole space
                    return new Op(Kind.Reserve, 0, 0, Access.None, false, owner, [(start, last)]);
                }
            case 17:
                {
                    ulong first = weird < 10 ? (ulong)(b % 4) * P : 0;
                    ulong last = weird == 2 ? ulong.MaxValue : (ulong)(8 + a % 64) * P - 1;
                    if (weird == 3)
                        (first, last) = (last, first);
                    return new Op(Kind.Aperture, 0, 0, Access.None, false, owner, [(first, last)]);
                }
            case 18:
                return new Op(Kind.Unreserve, 0, 0, Access.None, false, owner, []);
            default:
                if (weird == 9)
                    return new Op(Kind.PageSize, 0, c % 2 == 0 ? 3000UL : 0, Access.None, false, 0, []);
                if (weird < 9)
                {
                    ulong size = (c % 5) switch { 0 => P / 2, 1 or 2 => P, 3 => 2 * P, _ => 4 * P };
                    return new Op(Kind.PageSize, 0, size, Access.None, false, 0, []);
                }
                var ranges = ImmutableArray.CreateBuilder<(ulong, ulong)>();
                foreach (int seed in new[] { a, b, d }.Take(c % 4))
                {
                    ulong start = (ulong)(seed % 80) * P;
                    ulong last = start + (ulong)(seed / 80 % 12 + 1) * P - 1;
                    ranges.Add(weird == 10 ? (last, start) : (start, last));
                }
                return new Op(Kind.Allow, 0, 0, Access.None, false, 0, ranges.ToImmutable());
        }
    }

    private static readonly Gen<Op> GenOp = Gen.Select(Gen.Int[0, 19], Gen.Int[0, 10_000], Gen.Int[0, 10_000],
        Gen.Int[0, 10_000], Gen.Int[0, 10_000], Gen.Int[0, 30], MakeOp);

    private sealed record Range(ulong Iova, ulong Length, Access Access, int Value)
    {
        public UInt128 End => (UInt128)Iova + Length;
        public bool Overlaps(UInt128 start, UInt128 end) => Iova < end && start < End;
    }

    private sealed record Reserved(ulong Start, ulong Last, string Owner)
    {
        public bool Touches(UInt128 start, UInt128 end) => Start < end && start <= Last;
    }

    private sealed class Model
    {
        public readonly List<Range> Ranges = [];
        public readonly List<Reserved> Reservations = []; // in the order they were made
        public List<(ulong Start, ulong Last)> Allowed = []; // sorted
        public ulong PageSize = P;

        public static FabricError? Veto(IovaMapping<int> m) =>
            m.Value % 4 == 0 ? new FabricError(ErrorCode.EBUSY, $"mapping {m} is exported") : null;

        private bool Reserved(UInt128 start, UInt128 end) => Reservations.Any(r => r.Touches(start, end));

        private bool Mapped(UInt128 start, UInt128 end) => Ranges.Any(r => r.Overlaps(start, end));

        public bool InsideAllowed(UInt128 start, UInt128 end)
        {
            UInt128 covered = start;
            foreach ((ulong s, ulong l) in Allowed)
            {
                if (s <= covered && covered <= l)
                    covered = (UInt128)l + 1;
            }
            return covered >= end;
        }

        public (ErrorCode? Code, ulong At) Map(Op op, int value)
        {
            if ((op.Access & ~Access.ReadWrite) != 0 || op.Length == 0)
                return (ErrorCode.EINVAL, 0);
            bool isFixed = op.Kind == Kind.MapFixed;
            if (isFixed && (UInt128)op.Iova + op.Length > TwoTo64)
                return (ErrorCode.EOVERFLOW, 0);
            if ((op.Access & Access.ReadWrite) == 0 || op.Length % PageSize != 0)
                return (ErrorCode.EINVAL, 0);
            ulong at;
            if (isFixed)
            {
                UInt128 end = (UInt128)op.Iova + op.Length;
                if (op.Iova % PageSize != 0 || Reserved(op.Iova, end))
                    return (ErrorCode.EINVAL, 0);
                if (Mapped(op.Iova, end))
                    return (ErrorCode.EEXIST, 0);
                at = op.Iova;
            }
            else
            {
                if (op.Length > 1UL << 63)
                    return (ErrorCode.ENOSPC, 0);
                UInt128 align = PageSize;
                while (align < op.Length)
                    align *= 2;
                UInt128 AlignUp(UInt128 x) => (x + align - 1) / align * align;
                // Everything an automatic IOVA must not touch, as [start, end).
                List<(UInt128 Start, UInt128 End)> taken =
                    [.. Ranges.Select(r => ((UInt128)r.Iova, r.End)), .. Reservations.Select(r => ((UInt128)r.Start, (UInt128)r.Last + 1))];
                // The lowest free aligned IOVA is the alignment itself or the first aligned IOVA after something taken
                // or at an allowed range's start: try each such candidate, lowest first, against everything.
                List<UInt128> candidates = [align, .. taken.Select(t => AlignUp(t.End)), .. Allowed.Select(r => AlignUp(r.Start))];
                candidates.Sort();
                UInt128? found = null;
                foreach (UInt128 c in candidates)
                {
                    UInt128 end = c + op.Length;
                    if (c >= align && end <= TwoTo64 && !taken.Exists(t => t.Start < end && c < t.End) &&
                        (Allowed.Count == 0 || InsideAllowed(c, end)))
                    {
                        found = c;
                        break;
                    }
                }
                if (found is null)
                    return (ErrorCode.ENOSPC, 0);
                at = (ulong)found.Value;
            }
            Ranges.Add(new Range(at, op.Length, op.Access, value));
            return (null, at);
        }

        public (ErrorCode? Code, List<Range> Removed) Unmap(Op op)
        {
            List<Range> hit;
            if (op.Iova == 0 && op.Length == ulong.MaxValue)
            {
                hit = [.. Ranges];
            }
            else
            {
                if (op.Length == 0)
                    return (ErrorCode.EINVAL, []);
                UInt128 end = (UInt128)op.Iova + op.Length;
                if (end > TwoTo64)
                    return (ErrorCode.EOVERFLOW, []);
                hit = Ranges.Where(r => r.Overlaps(op.Iova, end)).ToList();
                if (hit.Any(r => r.Iova < op.Iova || r.End > end) || hit.Count == 0)
                    return (ErrorCode.ENOENT, []);
            }
            if (op.Veto && hit.Any(r => r.Value % 4 == 0))
                return (ErrorCode.EBUSY, []);
            Ranges.RemoveAll(hit.Contains);
            return (null, hit.OrderBy(r => r.Iova).ToList());
        }

        public (ErrorCode? Code, Range? Mapping, ulong Offset) Resolve(Op op)
        {
            if (op.Length == 0)
                return (ErrorCode.EINVAL, null, 0);
            UInt128 end = (UInt128)op.Iova + op.Length;
            if (end > TwoTo64)
                return (ErrorCode.EOVERFLOW, null, 0);
            Range? r = Ranges.SingleOrDefault(r => r.Iova <= op.Iova && op.Iova < r.End);
            if (r is null || end > r.End)
                return (ErrorCode.ENOENT, null, 0);
            if ((op.Access & ~r.Access) != 0)
                return (ErrorCode.EPERM, null, 0);
            return (null, r, op.Iova - r.Iova);
        }

        public (ErrorCode? Code, List<(Range, ulong, ulong)> Pieces) Cover(Op op)
        {
            if (op.Length == 0)
                return (ErrorCode.EINVAL, []);
            UInt128 end = (UInt128)op.Iova + op.Length;
            if (end > TwoTo64)
                return (ErrorCode.EOVERFLOW, []);
            var pieces = new List<(Range, ulong, ulong)>();
            UInt128 at = op.Iova;
            while (at < end)
            {
                Range? r = Ranges.SingleOrDefault(r => r.Iova <= at && at < r.End);
                if (r is null)
                    return (ErrorCode.ENOENT, []);
                UInt128 pieceEnd = UInt128.Min(end, r.End);
                pieces.Add((r, (ulong)(at - r.Iova), (ulong)(pieceEnd - at)));
                at = pieceEnd;
            }
            return (null, pieces);
        }

        public ErrorCode? Reserve(IReadOnlyList<(ulong Start, ulong Last)> regions, string owner)
        {
            foreach ((ulong start, ulong last) in regions)
            {
                UInt128 end = (UInt128)last + 1;
                if (Mapped(start, end) || Allowed.Any(a => a.Start <= last && start <= a.Last))
                    return ErrorCode.EADDRINUSE;
            }
            Reservations.AddRange(regions.Select(r => new Reserved(r.Start, r.Last, owner)));
            return null;
        }

        public ErrorCode? Aperture(ulong first, ulong last, string owner)
        {
            if (first > last)
                return ErrorCode.EINVAL;
            var outside = new List<(ulong, ulong)>();
            if (first > 0)
                outside.Add((0, first - 1));
            if (last < ulong.MaxValue)
                outside.Add((last + 1, ulong.MaxValue));
            return Reserve(outside, owner);
        }

        public ErrorCode? Allow(ImmutableArray<(ulong Start, ulong Last)> ranges)
        {
            if (ranges.Any(r => r.Start > r.Last))
                return ErrorCode.EINVAL;
            for (int i = 0; i < ranges.Length; i++)
            {
                for (int j = i + 1; j < ranges.Length; j++)
                {
                    if (ranges[i].Start <= ranges[j].Last && ranges[j].Start <= ranges[i].Last)
                        return ErrorCode.EINVAL;
                }
            }
            if (ranges.Any(a => Reserved(a.Start, (UInt128)a.Last + 1)))
                return ErrorCode.EADDRINUSE;
            Allowed = [.. ranges.OrderBy(r => r.Start)];
            return null;
        }

        public ErrorCode? SetPageSize(ulong size)
        {
            if (size == 0 || !BitOperations.IsPow2(size))
                return ErrorCode.EINVAL;
            if (Ranges.Any(r => r.Iova % size != 0 || r.Length % size != 0))
                return ErrorCode.EADDRINUSE;
            PageSize = size;
            return null;
        }

        // The complement of the reservations over [0, 2^64), byte by byte in spirit: sweep the sorted regions.
        public List<(ulong Start, ulong Last)> Usable()
        {
            var usable = new List<(ulong, ulong)>();
            UInt128 next = 0;
            foreach (Reserved r in Reservations.OrderBy(r => r.Start))
            {
                if (r.Start > next)
                    usable.Add(((ulong)next, r.Start - 1));
                next = UInt128.Max(next, (UInt128)r.Last + 1);
            }
            if (next < TwoTo64)
                usable.Add(((ulong)next, ulong.MaxValue));
            return usable;
        }
    }

    private static Range ToRange(IovaMapping<int> m) => new(m.Iova, m.Length, m.Access, m.Value);

    [Fact]
    public void Random_operation_sequences_agree_with_the_naive_model()
    {
        // CsCheck prints the failing seed and the shrunk sequence; pass seed: "..." to replay a failure.
        GenOp.Array[1, 120].Sample(ops =>
        {
            var map = new IovaMap<int>(Space, P);
            var model = new Model();
            int nextValue = 1;
            foreach (Op op in ops)
            {
                FabricError? error = Apply(map, model, op, ref nextValue);
                if (error is not null && error.Code != ErrorCode.EBUSY)
                    Assert.Contains(Space, error.Message);
                CheckInvariants(map, model);
            }

            Assert.True(map.TryUnmap(0, ulong.MaxValue, out ulong all, out _, out FabricError? last));
            Assert.Null(last);
            Assert.Equal(model.Ranges.Aggregate(0UL, (sum, r) => sum + r.Length), all);
            Assert.Equal(0, map.Count);
            Assert.Equal(0UL, map.MappedBytes);
            Assert.Empty(map.Mappings);
        }, iter: 2000);
    }

    private static FabricError? Apply(IovaMap<int> map, Model model, Op op, ref int nextValue)
    {
        bool ok;
        FabricError? error;
        ErrorCode? code;
        switch (op.Kind)
        {
            case Kind.MapFixed or Kind.MapAuto:
                {
                    int value = nextValue++;
                    (code, ulong expectedAt) = model.Map(op, value);
                    ok = map.TryMap(op.Kind == Kind.MapFixed ? op.Iova : null, op.Length, op.Access, value, out ulong at, out error);
                    Same(expectedAt, at);
                    if (ok && op.Kind == Kind.MapAuto)
                    {
                        ulong align = Math.Max(map.PageSize, BitOperations.RoundUpToPowerOf2(op.Length));
                        Assert.NotEqual(0UL, at);
                        Same(0UL, at % align);
                        if (!map.AllowedRanges.IsEmpty && !model.InsideAllowed(at, (UInt128)at + op.Length))
                            Assert.Fail($"0x{at:x} is outside the allowed ranges");
                    }
                    break;
                }
            case Kind.Unmap:
                {
                    (code, List<Range> expectedRemoved) = model.Unmap(op);
                    ok = map.TryUnmap(op.Iova, op.Length, out ulong bytes, out ImmutableArray<IovaMapping<int>> removed, out error,
                        op.Veto ? Model.Veto : null);
                    SameSequence(expectedRemoved, removed.Select(ToRange));
                    Same(expectedRemoved.Aggregate(0UL, (sum, r) => sum + r.Length), bytes);
                    if (ok && op.Iova == 0 && op.Length == ulong.MaxValue)
                        Same(0, map.Count);
                    break;
                }
            case Kind.Resolve:
                {
                    (code, Range? expected, ulong expectedOffset) = model.Resolve(op);
                    ok = map.TryResolve(op.Iova, op.Length, op.Access, out IovaMapping<int>? mapping, out ulong offset, out error);
                    Same(expected, mapping is null ? null : ToRange(mapping));
                    Same(expectedOffset, offset);
                    break;
                }
            case Kind.Cover:
                {
                    (code, List<(Range, ulong, ulong)> expected) = model.Cover(op);
                    ok = map.TryGetCovering(op.Iova, op.Length, out var pieces, out error);
                    SameSequence(expected, pieces.Select(p => (ToRange(p.Mapping), p.OffsetInMapping, p.Length)));
                    break;
                }
            case Kind.Reserve:
                {
                    (ulong start, ulong last) = op.Ranges[0];
                    code = start > last ? ErrorCode.EINVAL : model.Reserve([(start, last)], Owners[op.Owner]);
                    ok = map.TryReserve(start, last, Owners[op.Owner], out error);
                    break;
                }
            case Kind.Aperture:
                {
                    (ulong first, ulong last) = op.Ranges[0];
                    code = model.Aperture(first, last, Owners[op.Owner]);
                    ok = map.TryLimitAperture(first, last, Owners[op.Owner], out error);
                    break;
                }
            case Kind.Unreserve:
                model.Reservations.RemoveAll(r => r.Owner == Owners[op.Owner]);
                map.Unreserve(Owners[op.Owner]);
                return null;
            case Kind.Allow:
                code = model.Allow(op.Ranges);
                ok = map.TrySetAllowed(op.Ranges, out error);
                break;
            case Kind.PageSize:
                code = model.SetPageSize(op.Length);
                ok = map.TrySetPageSize(op.Length, out error);
                break;
            default:
                throw new InvalidOperationException(op.ToString());
        }
        Same(code, error?.Code);
        Same(code is null, ok);
        return error;
    }

    private static void CheckInvariants(IovaMap<int> map, Model model)
    {
        List<Range> actual = map.Mappings.Select(ToRange).ToList();
        SameSequence(model.Ranges.OrderBy(r => r.Iova), actual);
        for (int i = 1; i < actual.Count; i++)
        {
            if (actual[i - 1].End > actual[i].Iova)
                Assert.Fail($"{actual[i - 1]} overlaps {actual[i]}");
        }
        Same(actual.Aggregate(0UL, (sum, r) => sum + r.Length), map.MappedBytes);
        Same(actual.Count, map.Count);

        SameSequence(model.Reservations.OrderBy(r => r.Start), map.Reservations.Select(r => new Reserved(r.Start, r.Last, (string)r.Owner)));
        foreach (Range m in actual)
        {
            if (model.Reservations.Any(r => r.Touches(m.Iova, m.End)))
                Assert.Fail($"{m} touches a reserved region");
            if (m.Iova % map.PageSize != 0 || m.Length % map.PageSize != 0)
                Assert.Fail($"{m} is off the page size 0x{map.PageSize:x}");
        }
        SameSequence(model.Usable(), map.UsableRanges);
        SameSequence(model.Allowed, map.AllowedRanges);
        Same(model.PageSize, map.PageSize);
    }

    // Assert.Equal is slow even when it passes, and these run after every operation: compare first, let it report.
    private static void SameSequence<T>(IEnumerable<T> expected, IEnumerable<T> actual)
    {
        if (!expected.SequenceEqual(actual))
            Assert.Equal(expected, actual);
    }

    private static void Same<T>(T expected, T actual)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
            Assert.Equal(expected, actual);
    }
}
