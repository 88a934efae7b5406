using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Fabric.Core.Commands;

namespace Fabric.Devices.Internal.Commands;

/// <summary>
/// Runs the compute commands (FILL through CHECKSUM) of a <see cref="DecodedProgram"/> on the CPU. Each operand is
/// translated once through <see cref="IDeviceMemoryView"/>; work then proceeds in chunks of at most 1 GiB (so ranges
/// beyond <see cref="int.MaxValue"/> bytes work) and the cancellation token is checked before every chunk.
/// <para>
/// Operands of COPY may overlap (memmove). Other commands may alias an input and the output exactly (in-place
/// ADD/SCALE/AXPY), but partially overlapping operands, or a MATMUL output that overlaps an input, give unspecified
/// (still memory-safe) results.
/// </para>
/// </summary>
internal static unsafe class KernelExecutor
{
    /// <summary>The largest piece of work between two cancellation checks.</summary>
    public const ulong DefaultChunkBytes = 1UL << 30;

    /// <summary>Runs one compute command. Throws <see cref="InvalidOperationException"/> for fence commands, which the
    /// device handles, and <see cref="OperationCanceledException"/> when <paramref name="cancel"/> fires between chunks.</summary>
    public static void Execute(DecodedCommand command, IDeviceMemoryView memory, CancellationToken cancel) =>
        Execute(command, memory, cancel, DefaultChunkBytes);

    /// <summary>As <see cref="Execute(DecodedCommand, IDeviceMemoryView, CancellationToken)"/> with a chosen chunk size
    /// (clamped to [64 bytes, 1 GiB] and rounded down to a multiple of 64), so tests can cross chunk boundaries.</summary>
    internal static void Execute(DecodedCommand command, IDeviceMemoryView memory, CancellationToken cancel, ulong chunkBytes)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(memory);
        var chunk = Math.Clamp(chunkBytes, 64, DefaultChunkBytes) & ~63UL;
        cancel.ThrowIfCancellationRequested();
        switch (command)
        {
            case FillCommand c:
                Fill(memory.Translate(c.Dst, c.Length), c.Length, c.Pattern, chunk, cancel);
                break;
            case CopyCommand c:
                Copy(memory.Translate(c.Dst, c.Length), memory.Translate(c.Src, c.Length), c.Length, chunk, cancel);
                break;
            case AddF32Command c:
                Add((float*)memory.Translate(c.Dst, c.ByteLength), (float*)memory.Translate(c.A, c.ByteLength),
                    (float*)memory.Translate(c.B, c.ByteLength), c.Count, chunk / sizeof(float), cancel);
                break;
            case ScaleF32Command c:
                Scale((float*)memory.Translate(c.Dst, c.ByteLength), (float*)memory.Translate(c.Src, c.ByteLength),
                    c.Alpha, c.Count, chunk / sizeof(float), cancel);
                break;
            case AxpyF32Command c:
                Axpy((float*)memory.Translate(c.Y, c.ByteLength), (float*)memory.Translate(c.X, c.ByteLength),
                    c.Alpha, c.Count, chunk / sizeof(float), cancel);
                break;
            case MatMulF32Command c:
                MatMul((float*)memory.Translate(c.C, c.CByteLength), (float*)memory.Translate(c.A, c.AByteLength),
                    (float*)memory.Translate(c.B, c.BByteLength), c.M, c.N, c.K, chunk / sizeof(float), cancel);
                break;
            case ReduceSumF32Command c:
            {
                var dst = memory.Translate(c.Dst, sizeof(float));
                var sum = ReduceSum((float*)memory.Translate(c.Src, c.ByteLength), c.Count, chunk / sizeof(float), cancel);
                Unsafe.WriteUnaligned(dst, (float)sum);
                break;
            }
            case ChecksumCommand c:
            {
                var dst = memory.Translate(c.Dst, sizeof(uint));
                var crc = Crc32C(memory.Translate(c.Src, c.Length), c.Length, chunk, cancel);
                Unsafe.WriteUnaligned(dst, BitConverter.IsLittleEndian ? crc : BinaryReverse(crc));
                break;
            }
            case SignalFenceCommand or WaitFenceCommand:
                throw new InvalidOperationException($"{command.Location} is a fence command: the device handles fences, not the kernel executor");
            default:
                throw new InvalidOperationException($"{command.Location} has no kernel");
        }
    }

    private static uint BinaryReverse(uint value) => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value);

    // ---- FILL / COPY ---------------------------------------------------------------------------------------------

    private static void Fill(byte* dst, ulong length, uint pattern, ulong chunk, CancellationToken cancel)
    {
        // The chunk size is a multiple of 4, so every chunk starts at pattern phase 0.
        for (ulong done = 0; done < length; done += chunk)
        {
            cancel.ThrowIfCancellationRequested();
            FillChunk(dst + done, Math.Min(chunk, length - done), pattern);
        }
    }

    private static void FillChunk(byte* dst, ulong length, uint pattern)
    {
        var b0 = (byte)pattern;
        if (pattern == b0 * 0x01010101u)
        {
            NativeMemory.Fill(dst, (nuint)length, b0);
            return;
        }

        var words = length / 4;
        var native = BitConverter.IsLittleEndian ? pattern : BinaryReverse(pattern);
        new Span<uint>(dst, checked((int)words)).Fill(native);
        for (var i = words * 4; i < length; i++)
            dst[i] = (byte)(pattern >> (int)(8 * (i & 3)));
    }

    private static void Copy(byte* dst, byte* src, ulong length, ulong chunk, CancellationToken cancel)
    {
        if (dst == src)
            return;
        if (dst < src || dst >= src + length)
        {
            for (ulong done = 0; done < length; done += chunk)
            {
                cancel.ThrowIfCancellationRequested();
                var n = Math.Min(chunk, length - done);
                Buffer.MemoryCopy(src + done, dst + done, n, n);
            }
        }
        else
        {
            // dst overlaps the tail of src: copy chunks from the end so no chunk reads bytes already overwritten.
            for (var end = length; end > 0;)
            {
                cancel.ThrowIfCancellationRequested();
                var n = Math.Min(chunk, end);
                end -= n;
                Buffer.MemoryCopy(src + end, dst + end, n, n);
            }
        }
    }

    // ---- element-wise float32 ------------------------------------------------------------------------------------

    private static void Add(float* dst, float* a, float* b, ulong count, ulong chunk, CancellationToken cancel)
    {
        for (ulong done = 0; done < count; done += chunk)
        {
            cancel.ThrowIfCancellationRequested();
            AddChunk(dst + done, a + done, b + done, (nuint)Math.Min(chunk, count - done));
        }
    }

    private static void AddChunk(float* dst, float* a, float* b, nuint n)
    {
        nuint i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var w = (nuint)Vector<float>.Count;
            for (; i + w <= n; i += w)
                Store(dst + i, Load(a + i) + Load(b + i));
        }
        for (; i < n; i++)
            dst[i] = a[i] + b[i];
    }

    private static void Scale(float* dst, float* src, float alpha, ulong count, ulong chunk, CancellationToken cancel)
    {
        for (ulong done = 0; done < count; done += chunk)
        {
            cancel.ThrowIfCancellationRequested();
            ScaleChunk(dst + done, src + done, alpha, (nuint)Math.Min(chunk, count - done));
        }
    }

    private static void ScaleChunk(float* dst, float* src, float alpha, nuint n)
    {
        nuint i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var w = (nuint)Vector<float>.Count;
            var va = new Vector<float>(alpha);
            for (; i + w <= n; i += w)
                Store(dst + i, va * Load(src + i));
        }
        for (; i < n; i++)
            dst[i] = alpha * src[i];
    }

    private static void Axpy(float* y, float* x, float alpha, ulong count, ulong chunk, CancellationToken cancel)
    {
        for (ulong done = 0; done < count; done += chunk)
        {
            cancel.ThrowIfCancellationRequested();
            AxpyChunk(y + done, x + done, alpha, (nuint)Math.Min(chunk, count - done));
        }
    }

    /// <summary>y[i] = alpha * x[i] + y[i], rounded after the multiply and after the add (no fused multiply-add), so the
    /// vector body and the scalar tail give identical results.</summary>
    private static void AxpyChunk(float* y, float* x, float alpha, nuint n)
    {
        nuint i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var w = (nuint)Vector<float>.Count;
            var va = new Vector<float>(alpha);
            for (; i + w <= n; i += w)
                Store(y + i, va * Load(x + i) + Load(y + i));
        }
        for (; i < n; i++)
            y[i] = alpha * x[i] + y[i];
    }

    private static double ReduceSum(float* src, ulong count, ulong chunk, CancellationToken cancel)
    {
        var total = 0.0;
        for (ulong done = 0; done < count; done += chunk)
        {
            cancel.ThrowIfCancellationRequested();
            total += ReduceChunk(src + done, (nuint)Math.Min(chunk, count - done));
        }
        return total;
    }

    private static double ReduceChunk(float* src, nuint n)
    {
        nuint i = 0;
        var sum = 0.0;
        if (Vector.IsHardwareAccelerated)
        {
            var w = (nuint)Vector<float>.Count;
            Vector<double> acc0 = Vector<double>.Zero, acc1 = Vector<double>.Zero;
            for (; i + w <= n; i += w)
            {
                Vector.Widen(Load(src + i), out var low, out var high);
                acc0 += low;
                acc1 += high;
            }
            sum = Vector.Sum(acc0 + acc1);
        }
        for (; i < n; i++)
            sum += src[i];
        return sum;
    }

    // ---- MATMUL --------------------------------------------------------------------------------------------------

    /// <summary>C = A·B with the i-k-j loop order: each row of C is built from whole rows of B, so the inner loop runs
    /// over contiguous memory of both and vectorizes.</summary>
    private static void MatMul(float* c, float* a, float* b, uint m, uint n, uint k, ulong chunk, CancellationToken cancel)
    {
        ulong work = 0;
        for (nuint i = 0; i < m; i++)
        {
            var cRow = c + i * n;
            var aRow = a + i * k;
            for (nuint p = 0; p < k; p++)
            {
                var aip = aRow[p];
                var bRow = b + p * n;
                for (nuint j = 0; j < n; j += (nuint)chunk)
                {
                    var len = (nuint)Math.Min(chunk, (ulong)(n - j));
                    if (p == 0)
                        ScaleChunk(cRow + j, bRow + j, aip, len);
                    else
                        AxpyChunk(cRow + j, bRow + j, aip, len);
                    work += len;
                    if (work >= chunk)
                    {
                        cancel.ThrowIfCancellationRequested();
                        work = 0;
                    }
                }
            }
        }
    }

    // ---- CHECKSUM ------------------------------------------------------------------------------------------------

    /// <summary>CRC-32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of the bytes at <paramref name="src"/>.</summary>
    private static uint Crc32C(byte* src, ulong length, ulong chunk, CancellationToken cancel)
    {
        var crc = 0xFFFFFFFFu;
        for (ulong done = 0; done < length; done += chunk)
        {
            cancel.ThrowIfCancellationRequested();
            crc = Crc32CChunk(crc, src + done, Math.Min(chunk, length - done));
        }
        return ~crc;
    }

    private static uint Crc32CChunk(uint crc, byte* p, ulong n)
    {
        ulong i = 0;
        // BitOperations.Crc32C consumes a ulong least significant byte first, which is memory order on little-endian hosts.
        for (; i + 32 <= n; i += 32)
        {
            crc = BitOperations.Crc32C(crc, ReadLittleEndian(p + i));
            crc = BitOperations.Crc32C(crc, ReadLittleEndian(p + i + 8));
            crc = BitOperations.Crc32C(crc, ReadLittleEndian(p + i + 16));
            crc = BitOperations.Crc32C(crc, ReadLittleEndian(p + i + 24));
        }
        for (; i + 8 <= n; i += 8)
            crc = BitOperations.Crc32C(crc, ReadLittleEndian(p + i));
        for (; i < n; i++)
            crc = BitOperations.Crc32C(crc, p[i]);
        return crc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadLittleEndian(byte* p)
    {
        var value = Unsafe.ReadUnaligned<ulong>(p);
        return BitConverter.IsLittleEndian ? value : System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Load(float* p) => Unsafe.ReadUnaligned<Vector<float>>(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* p, Vector<float> value) => Unsafe.WriteUnaligned(p, value);
}
