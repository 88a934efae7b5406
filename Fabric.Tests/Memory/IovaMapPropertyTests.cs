using System.Collections.Immutable;
using CsCheck;
using Fabric.Core;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Tests.Memory;

/// <summary>Random map/unmap/resolve sequences checked against a naive model: a plain list of ranges, in 128-bit arithmetic.</summary>
public class IovaMapPropertyTests
{
    private const ulong P = 0x1000;
    private const ulong Limit = 64 * P;
    private const string Space = "address space as-9 of ctx-1";

    private enum Kind { MapFixed, MapAuto, Unmap, Resolve }

    private sealed record Op(Kind Kind, ulong Iova, ulong Length, Access Access, bool Veto)
    {
        public override string ToString() => $"{Kind}(0x{Iova:x}, 0x{Length:x}, {Access}{(Veto ? ", veto" : "")})";
    }

    // Mostly well-formed operations on a small space (so that overlaps, holes and exhaustion are common), with a
    // sprinkling of malformed ones: zero lengths, unaligned values, no access, wrapping and out-of-limit ranges.
    private static Op MakeOp(int kind, int a, int b, int c, int weird)
    {
        ulong iova = (ulong)(a % 70) * P;
        ulong length = (ulong)(b % 9 + 1) * P;
        var access = (Access)(c % 3 + 1);
        bool veto = c % 2 == 0;
        switch (kind % 10)
        {
            case 0 or 1 or 2:
                switch (weird)
                {
                    case 0: length = 0; break;
                    case 1: iova += 0x800; break;
                    case 2: length += 0x200; break;
                    case 3: access = Access.None; break;
                    case 4: iova = ulong.MaxValue - P + 1; break;
                    case 5: iova = Limit - P; break;
                }
                return new Op(Kind.MapFixed, iova, length, access, false);
            case 3 or 4:
                switch (weird)
                {
                    case 0: length = 0; break;
                    case 2: length += 0x200; break;
                    case 3: access = Access.None; break;
                    case 6: length = (1UL << 63) + P; break;
                    case 7: length = 40 * P; break;
                }
                return new Op(Kind.MapAuto, 0, length, access, false);
            case 5 or 6:
                switch (weird)
                {
                    case 0: length = 0; break;
                    case 1: iova += 0x800; break;
                    case 4: iova = ulong.MaxValue - P + 1; length += P; break;
                    case 7 or 8: iova = 0; length = ulong.MaxValue; break;
                    case 9: length += 0x10; break;
                }
                return new Op(Kind.Unmap, iova, length, Access.None, veto);
            default:
                ulong at = (ulong)a * 97 % (66 * P);
                ulong len = (ulong)b * 31 % (3 * P);
                if (weird == 4)
                    len = ulong.MaxValue;
                return new Op(Kind.Resolve, at, len, (Access)(c % 4), false);
        }
    }

    private static readonly Gen<Op> GenOp = Gen.Select(Gen.Int[0, 9], Gen.Int[0, 10_000], Gen.Int[0, 10_000], Gen.Int[0, 10_000],
        Gen.Int[0, 30], MakeOp);

    private sealed record Range(ulong Iova, ulong Length, Access Access, int Value)
    {
        public UInt128 End => (UInt128)Iova + Length;
        public bool Overlaps(UInt128 start, UInt128 end) => Iova < end && start < End;
    }

    private sealed class Model
    {
        public readonly List<Range> Ranges = [];
        private static readonly UInt128 TwoTo64 = (UInt128)ulong.MaxValue + 1;

        public static FabricError? Veto(IovaMapping<int> m) =>
            m.Value % 4 == 0 ? new FabricError(ErrorCode.EBUSY, $"mapping {m} is exported") : null;

        public (ErrorCode? Code, ulong At) Map(Op op, int value)
        {
            if (op.Length == 0 || (op.Access & Access.ReadWrite) == 0 || op.Length % P != 0)
                return (ErrorCode.EINVAL, 0);
            ulong at;
            if (op.Kind == Kind.MapFixed)
            {
                if (op.Iova % P != 0)
                    return (ErrorCode.EINVAL, 0);
                UInt128 end = (UInt128)op.Iova + op.Length;
                if (end > TwoTo64)
                    return (ErrorCode.EOVERFLOW, 0);
                if (end > Limit)
                    return (ErrorCode.EOVERFLOW, 0);
                if (Ranges.Any(r => r.Overlaps(op.Iova, end)))
                    return (ErrorCode.EEXIST, 0);
                at = op.Iova;
            }
            else
            {
                UInt128 align = P;
                while (align < op.Length)
                    align *= 2;
                UInt128? found = null;
                for (UInt128 c = align; c + op.Length <= Limit; c += align)
                {
                    if (!Ranges.Any(r => r.Overlaps(c, c + op.Length)))
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
    }

    private static Range ToRange(IovaMapping<int> m) => new(m.Iova, m.Length, m.Access, m.Value);

    [Fact]
    public void Random_operation_sequences_agree_with_the_naive_model()
    {
        // CsCheck prints the failing seed and the shrunk sequence; pass seed: "..." to replay a failure.
        GenOp.Array[1, 120].Sample(ops =>
        {
            var map = new IovaMap<int>(Space, P, Limit);
            var model = new Model();
            int nextValue = 1;
            foreach (Op op in ops)
            {
                switch (op.Kind)
                {
                    case Kind.MapFixed or Kind.MapAuto:
                    {
                        int value = nextValue++;
                        (ErrorCode? code, ulong expectedAt) = model.Map(op, value);
                        bool ok = map.TryMap(op.Kind == Kind.MapFixed ? op.Iova : null, op.Length, op.Access, value,
                            out ulong at, out FabricError? error);
                        Assert.Equal(code, error?.Code);
                        Assert.Equal(code is null, ok);
                        Assert.Equal(expectedAt, at);
                        if (ok && op.Kind == Kind.MapAuto)
                        {
                            ulong align = Math.Max(P, System.Numerics.BitOperations.RoundUpToPowerOf2(op.Length));
                            Assert.NotEqual(0UL, at);
                            Assert.Equal(0UL, at % align);
                        }
                        if (error is not null)
                            Assert.Contains(Space, error.Message);
                        break;
                    }
                    case Kind.Unmap:
                    {
                        (ErrorCode? code, List<Range> expectedRemoved) = model.Unmap(op);
                        bool ok = map.TryUnmap(op.Iova, op.Length, out ulong bytes, out ImmutableArray<IovaMapping<int>> removed,
                            out FabricError? error, op.Veto ? Model.Veto : null);
                        Assert.Equal(code, error?.Code);
                        Assert.Equal(code is null, ok);
                        Assert.Equal(expectedRemoved, removed.Select(ToRange));
                        Assert.Equal(expectedRemoved.Aggregate(0UL, (sum, r) => sum + r.Length), bytes);
                        if (ok && op.Iova == 0 && op.Length == ulong.MaxValue)
                            Assert.Equal(0, map.Count);
                        if (error is not null && error.Code != ErrorCode.EBUSY)
                            Assert.Contains(Space, error.Message);
                        break;
                    }
                    case Kind.Resolve:
                    {
                        (ErrorCode? code, Range? expected, ulong expectedOffset) = model.Resolve(op);
                        bool ok = map.TryResolve(op.Iova, op.Length, op.Access, out IovaMapping<int>? mapping, out ulong offset,
                            out FabricError? error);
                        Assert.Equal(code, error?.Code);
                        Assert.Equal(code is null, ok);
                        Assert.Equal(expected, mapping is null ? null : ToRange(mapping));
                        Assert.Equal(expectedOffset, offset);
                        if (error is not null)
                            Assert.Contains(Space, error.Message);
                        break;
                    }
                }
                CheckInvariants(map, model);
            }

            Assert.True(map.TryUnmap(0, ulong.MaxValue, out ulong all, out _, out FabricError? last));
            Assert.Null(last);
            Assert.Equal(model.Ranges.Aggregate(0UL, (sum, r) => sum + r.Length), all);
            Assert.Equal(0, map.Count);
            Assert.Equal(0UL, map.MappedBytes);
            Assert.Empty(map.Mappings);
        }, iter: 400);
    }

    private static void CheckInvariants(IovaMap<int> map, Model model)
    {
        List<Range> actual = map.Mappings.Select(ToRange).ToList();
        Assert.Equal(model.Ranges.OrderBy(r => r.Iova), actual);
        for (int i = 1; i < actual.Count; i++)
            Assert.True(actual[i - 1].End <= actual[i].Iova, $"{actual[i - 1]} overlaps {actual[i]}");
        Assert.All(actual, r => Assert.True(r.End <= Limit));
        Assert.Equal(actual.Aggregate(0UL, (sum, r) => sum + r.Length), map.MappedBytes);
        Assert.Equal(actual.Count, map.Count);
    }
}
