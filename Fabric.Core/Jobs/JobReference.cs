using System.Buffers.Binary;
using System.Collections.Immutable;

namespace Fabric.Core.Jobs;

/// <summary>
/// Computes a job on the host with plain scalar code, written apart from the device kernels, so that device results
/// can be checked against it. Float kernels follow the device's rounding rules: element-wise operations in float32
/// (axpy rounds the product before the add), sums and dot products accumulated in double and rounded once.
/// </summary>
public static class JobReference
{
    /// <summary>Relative tolerance of float results (<see cref="Matches"/>).</summary>
    public const double RelativeTolerance = 1e-4;

    /// <summary>Below this magnitude two floats match regardless of their ratio (results of cancellation near zero).</summary>
    public const double AbsoluteFloor = 1e-6;

    /// <summary>Every buffer's final bytes. Throws <see cref="FabricException"/> when the spec is not valid.</summary>
    public static ImmutableDictionary<string, byte[]> Evaluate(JobSpec spec)
    {
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
    public static bool Matches(byte[] expected, byte[] actual, string? kernelOfProducer)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        if (expected.Length != actual.Length) return false;
        if (kernelOfProducer is not (Kernels.Add or Kernels.Scale or Kernels.Axpy or Kernels.MatMul or Kernels.ReduceSum) ||
            expected.Length % 4 != 0)
            return expected.AsSpan().SequenceEqual(actual);

        for (var i = 0; i < expected.Length; i += 4)
        {
            double e = BinaryPrimitives.ReadSingleLittleEndian(expected.AsSpan(i));
            double a = BinaryPrimitives.ReadSingleLittleEndian(actual.AsSpan(i));
            if (double.IsNaN(e) || double.IsNaN(a))
            {
                if (double.IsNaN(e) != double.IsNaN(a)) return false;
                continue;
            }
            if (e == a) continue; // also equal infinities
            var difference = Math.Abs(e - a);
            if (difference <= AbsoluteFloor) continue;
            if (!(difference <= RelativeTolerance * Math.Max(Math.Abs(e), Math.Abs(a)))) return false;
        }
        return true;
    }

    private static byte[] Run(KernelStep step, long dstSize, Dictionary<string, byte[]> values)
    {
        var a = step.A is null ? null : values[step.A];
        var b = step.B is null ? null : values[step.B];
        var result = new byte[dstSize];
        switch (step.Kernel)
        {
            case Kernels.Fill:
                for (var i = 0; i < result.Length; i++) result[i] = (byte)(step.Pattern >> (8 * (i % 4)));
                break;
            case Kernels.Copy:
                Array.Copy(a!, result, result.Length);
                break;
            case Kernels.Add:
                for (var i = 0; i < result.Length / 4; i++) SetF(result, i, F(a!, i) + F(b!, i));
                break;
            case Kernels.Scale:
                for (var i = 0; i < result.Length / 4; i++) SetF(result, i, step.Alpha * F(a!, i));
                break;
            case Kernels.Axpy:
                for (var i = 0; i < result.Length / 4; i++)
                {
                    var product = step.Alpha * F(a!, i);
                    SetF(result, i, product + F(b!, i));
                }
                break;
            case Kernels.MatMul:
                for (var row = 0; row < step.M; row++)
                    for (var column = 0; column < step.N; column++)
                    {
                        // float32 arithmetic, summed in k order: the device's contract for MATMUL, so results
                        // compare bit for bit (and a checksum of them can be checked at all).
                        var dot = 0f;
                        for (var k = 0; k < step.K; k++)
                        {
                            var product = F(a!, row * (int)step.K + k) * F(b!, k * (int)step.N + column);
                            dot += product;
                        }
                        SetF(result, row * (int)step.N + column, dot);
                    }
                break;
            case Kernels.ReduceSum:
                var sum = 0.0;
                for (var i = 0; i < a!.Length / 4; i++) sum += F(a, i);
                SetF(result, 0, (float)sum);
                break;
            case Kernels.Checksum:
                BinaryPrimitives.WriteUInt32LittleEndian(result, Crc32C(a!));
                break;
            default:
                throw new FabricException(FabricError.Invalid($"the reference has no kernel '{step.Kernel}'"));
        }
        return result;
    }

    private static float F(byte[] bytes, int index) => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(index * 4));

    private static void SetF(byte[] bytes, int index, float value) => BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(index * 4), value);

    /// <summary>
    /// CRC-32C (Castagnoli, reflected 0x82F63B78, init and final xor 0xFFFFFFFF), one bit at a time: the host reference
    /// for the device's CHECKSUM command.
    /// </summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var value in data)
        {
            crc ^= value;
            for (var bit = 0; bit < 8; bit++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }
}
