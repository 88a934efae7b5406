using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Fabric.Core.Jobs;

/// <summary>
/// Computes a job on the host, with code written apart from the device kernels, so that device results can be checked
/// against it. Float kernels follow the device's rounding rules: element-wise operations in float32 (axpy rounds the
/// product before the add), matmul summed in k order in float32, sums accumulated in double and rounded once. It runs
/// in Vector&lt;float&gt; lanes and, for matmul, on every core: lanes and cores change how fast, never which roundings
/// happen in which order, so the results are those of the plain one-element-at-a-time definition.
/// </summary>
public static class JobReference
{
    /// <summary>Relative tolerance of float results (<see cref="Matches"/>).</summary>
    public const double RelativeTolerance = 1e-4;

    /// <summary>Below this magnitude two floats match regardless of their ratio (results of cancellation near zero).</summary>
    public const double AbsoluteFloor = 1e-6;

    /// <summary>
    /// Every buffer's final bytes. Throws <see cref="FabricException"/> when the spec is not valid. Float32 values are
    /// little-endian, as the devices store them; the host reads them in its own byte order, so it must be little-endian too.
    /// </summary>
    public static ImmutableDictionary<string, byte[]> Evaluate(JobSpec spec)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("the host reference reads float32 values in this machine's byte order, which must be little-endian like the devices'");
        var plan = JobPlan.Of(spec);
        var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var buffer in spec.Buffers)
            if (buffer.IsInput) values[buffer.Name] = BufferInit.Materialize(buffer);

        foreach (var task in plan.Tasks)
            foreach (var step in task.Task.Steps)
                values[step.Dst] = Run(step, spec.Buffer(step.Dst)!.Size, values);

        return values.ToImmutableDictionary(StringComparer.Ordinal);
    }

    /// <summary>
    /// Whether a device result <paramref name="actual"/> matches the reference <paramref name="expected"/>. Buffers
    /// last written by add, scale, axpy, matmul or reduce-sum compare as float32 values within
    /// <see cref="RelativeTolerance"/> (NaN matches NaN); anything else (fill, copy, checksum, job inputs) byte for byte.
    /// </summary>
    public static bool Matches(byte[] expected, byte[] actual, string? kernelOfProducer) => Difference(expected, actual, kernelOfProducer) is null;

    /// <summary>
    /// Null when <paramref name="actual"/> matches <paramref name="expected"/> as <see cref="Matches"/> says; otherwise a
    /// sentence naming the first element (or byte) that differs and both values. Every element is compared.
    /// </summary>
    public static string? Difference(byte[] expected, byte[] actual, string? kernelOfProducer)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        if (expected.Length != actual.Length) return $"it has {actual.Length} bytes where the host reference has {expected.Length}";
        if (expected.AsSpan().SequenceEqual(actual)) return null;
        if (!ComparesAsFloats(kernelOfProducer) || expected.Length % 4 != 0)
        {
            var at = expected.AsSpan().CommonPrefixLength(actual);
            return $"byte {at} is 0x{actual[at]:x2} where the host reference has 0x{expected[at]:x2} (compared byte for byte)";
        }
        var want = MemoryMarshal.Cast<byte, float>(expected.AsSpan());
        var got = MemoryMarshal.Cast<byte, float>(actual.AsSpan());
        for (var i = 0; i < want.Length; i++)
            if (!Close(want[i], got[i]))
                return string.Create(CultureInfo.InvariantCulture,
                    $"element {i} is {got[i]:G9} where the host reference has {want[i]:G9} (float32 compared within {RelativeTolerance:0e0} relative)");
        return null;
    }

    private static bool ComparesAsFloats(string? kernel) => kernel is Kernels.Add or Kernels.Scale or Kernels.Axpy or Kernels.MatMul or Kernels.ReduceSum;

    private static bool Close(double e, double a)
    {
        if (double.IsNaN(e) || double.IsNaN(a)) return double.IsNaN(e) == double.IsNaN(a);
        if (e == a) return true; // also equal infinities
        var difference = Math.Abs(e - a);
        return difference <= AbsoluteFloor || difference <= RelativeTolerance * Math.Max(Math.Abs(e), Math.Abs(a));
    }

    private static byte[] Run(KernelStep step, long dstSize, Dictionary<string, byte[]> values)
    {
        var a = step.A is null ? null : values[step.A];
        var b = step.B is null ? null : values[step.B];
        var result = new byte[dstSize];
        var count = result.Length / 4;
        switch (step.Kernel)
        {
            case Kernels.Fill:
                Fill(result, step.Pattern);
                break;
            case Kernels.Copy:
                a.AsSpan(0, result.Length).CopyTo(result);
                break;
            case Kernels.Add:
                Add(Floats(a!, count), Floats(b!, count), Floats(result, count));
                break;
            case Kernels.Scale:
                Scale(step.Alpha, Floats(a!, count), Floats(result, count));
                break;
            case Kernels.Axpy:
                Axpy(step.Alpha, Floats(a!, count), Floats(b!, count), Floats(result, count));
                break;
            case Kernels.MatMul:
                MatMul(a!, b!, result, (int)step.M, (int)step.N, (int)step.K);
                break;
            case Kernels.ReduceSum:
                var sum = 0.0;
                foreach (var value in Floats(a!, a!.Length / 4)) sum += value;
                BinaryPrimitives.WriteSingleLittleEndian(result, (float)sum);
                break;
            case Kernels.Checksum:
                BinaryPrimitives.WriteUInt32LittleEndian(result, Crc32C(a!));
                break;
            default:
                throw new FabricException(FabricError.Invalid($"the reference has no kernel '{step.Kernel}'"));
        }
        return result;
    }

    /// <summary>The first <paramref name="count"/> float32 values of <paramref name="bytes"/> (little-endian: see <see cref="Evaluate"/>).</summary>
    private static Span<float> Floats(byte[] bytes, int count) => MemoryMarshal.Cast<byte, float>(bytes.AsSpan(0, count * 4));

    private static void Fill(byte[] result, uint pattern)
    {
        var whole = result.Length & ~3;
        MemoryMarshal.Cast<byte, uint>(result.AsSpan(0, whole)).Fill(pattern);
        for (var i = whole; i < result.Length; i++) result[i] = (byte)(pattern >> (8 * (i % 4)));
    }

    // Element-wise kernels: Vector<float> lanes, then the tail one by one. Each lane rounds as the scalar operation would.
    private static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> dst)
    {
        var i = 0;
        for (; i <= dst.Length - Vector<float>.Count; i += Vector<float>.Count)
            (new Vector<float>(a[i..]) + new Vector<float>(b[i..])).CopyTo(dst[i..]);
        for (; i < dst.Length; i++) dst[i] = a[i] + b[i];
    }

    private static void Scale(float alpha, ReadOnlySpan<float> a, Span<float> dst)
    {
        var i = 0;
        var va = new Vector<float>(alpha);
        for (; i <= dst.Length - Vector<float>.Count; i += Vector<float>.Count)
            (va * new Vector<float>(a[i..])).CopyTo(dst[i..]);
        for (; i < dst.Length; i++) dst[i] = alpha * a[i];
    }

    /// <summary>dst = alpha·a + b with the product rounded to float32 before the add (two roundings, never a fused multiply-add).</summary>
    private static void Axpy(float alpha, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> dst)
    {
        var i = 0;
        var va = new Vector<float>(alpha);
        for (; i <= dst.Length - Vector<float>.Count; i += Vector<float>.Count)
        {
            var product = va * new Vector<float>(a[i..]);
            (product + new Vector<float>(b[i..])).CopyTo(dst[i..]);
        }
        for (; i < dst.Length; i++)
        {
            var product = alpha * a[i];
            dst[i] = product + b[i];
        }
    }

    /// <summary>Rows of the product each parallel part computes.</summary>
    private const int MatMulRowsPerPart = 32;

    /// <summary>
    /// c(m×n) = a(m×k)·b(k×n), row-major, in float32 with each element summed in k order: c[i,j] = a[i,0]·b[0,j], then
    /// c[i,j] += a[i,p]·b[p,j] for p = 1 … k−1, the product rounded before each add. That is the device's contract for
    /// MATMUL, so results compare bit for bit (and a checksum of them can be checked at all). Each element is computed
    /// alone, whatever the blocking: parts of rows run in parallel, 4 rows × 2 vectors of columns at a time stay in
    /// registers over the whole k loop, and the order of the adds is the same as one element at a time.
    /// </summary>
    private static void MatMul(byte[] aBytes, byte[] bBytes, byte[] cBytes, int m, int n, int k)
    {
        var parts = (m + MatMulRowsPerPart - 1) / MatMulRowsPerPart;
        void Part(int part)
        {
            var first = part * MatMulRowsPerPart;
            MatMulRows(Floats(aBytes, m * k), Floats(bBytes, k * n), Floats(cBytes, m * n), first, Math.Min(m, first + MatMulRowsPerPart), n, k);
        }
        if ((long)m * n * k < 1 << 22)
            for (var part = 0; part < parts; part++) Part(part);
        else
            Parallel.For(0, parts, Part);
    }

    private static void MatMulRows(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int firstRow, int endRow, int n, int k)
    {
        var w = Vector<float>.Count;
        var j = 0;
        for (; j + 2 * w <= n; j += 2 * w)
        {
            var i = firstRow;
            for (; i + 4 <= endRow; i += 4) MatMulBlock4(a, b, c, i, j, n, k);
            for (; i < endRow; i++) MatMulBlock1(a, b, c, i, j, n, k);
        }
        for (; j < n; j++)
            for (var i = firstRow; i < endRow; i++)
            {
                var row = i * k;
                var dot = a[row] * b[j];
                for (var p = 1; p < k; p++)
                {
                    var product = a[row + p] * b[p * n + j];
                    dot += product;
                }
                c[i * n + j] = dot;
            }
    }

    /// <summary>Rows i … i+3, columns j … j+2w−1 of c.</summary>
    private static void MatMulBlock4(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int i, int j, int n, int k)
    {
        var w = Vector<float>.Count;
        int r0 = i * k, r1 = r0 + k, r2 = r1 + k, r3 = r2 + k;
        var b0 = new Vector<float>(b[j..]);
        var b1 = new Vector<float>(b[(j + w)..]);
        Vector<float> s0 = new(a[r0]), s1 = new(a[r1]), s2 = new(a[r2]), s3 = new(a[r3]);
        Vector<float> c00 = s0 * b0, c01 = s0 * b1, c10 = s1 * b0, c11 = s1 * b1;
        Vector<float> c20 = s2 * b0, c21 = s2 * b1, c30 = s3 * b0, c31 = s3 * b1;
        for (var p = 1; p < k; p++)
        {
            var at = p * n + j;
            b0 = new Vector<float>(b[at..]);
            b1 = new Vector<float>(b[(at + w)..]);
            s0 = new Vector<float>(a[r0 + p]);
            s1 = new Vector<float>(a[r1 + p]);
            s2 = new Vector<float>(a[r2 + p]);
            s3 = new Vector<float>(a[r3 + p]);
            c00 += s0 * b0; c01 += s0 * b1;
            c10 += s1 * b0; c11 += s1 * b1;
            c20 += s2 * b0; c21 += s2 * b1;
            c30 += s3 * b0; c31 += s3 * b1;
        }
        var o = i * n + j;
        c00.CopyTo(c[o..]); c01.CopyTo(c[(o + w)..]); o += n;
        c10.CopyTo(c[o..]); c11.CopyTo(c[(o + w)..]); o += n;
        c20.CopyTo(c[o..]); c21.CopyTo(c[(o + w)..]); o += n;
        c30.CopyTo(c[o..]); c31.CopyTo(c[(o + w)..]);
    }

    /// <summary>Row i, columns j … j+2w−1 of c.</summary>
    private static void MatMulBlock1(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int i, int j, int n, int k)
    {
        var w = Vector<float>.Count;
        var r = i * k;
        var s = new Vector<float>(a[r]);
        Vector<float> c0 = s * new Vector<float>(b[j..]), c1 = s * new Vector<float>(b[(j + w)..]);
        for (var p = 1; p < k; p++)
        {
            var at = p * n + j;
            s = new Vector<float>(a[r + p]);
            c0 += s * new Vector<float>(b[at..]);
            c1 += s * new Vector<float>(b[(at + w)..]);
        }
        c0.CopyTo(c[(i * n + j)..]);
        c1.CopyTo(c[(i * n + j + w)..]);
    }

    /// <summary>
    /// CRC-32C (Castagnoli, reflected 0x82F63B78, init and final xor 0xFFFFFFFF): the host reference for the device's
    /// CHECKSUM command, eight bytes at a time through <see cref="BitOperations.Crc32C(uint, ulong)"/> (the CPU's CRC32
    /// instruction where there is one), least significant byte first.
    /// </summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        var i = 0;
        for (; i + 8 <= data.Length; i += 8) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }
}
