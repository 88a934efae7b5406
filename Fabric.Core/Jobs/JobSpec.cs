using System.Buffers.Binary;
using System.Collections.Immutable;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Core.Jobs;

/// <summary>
/// A job as a user submits it: named buffers and a DAG of tasks over them. Buffers are values, each produced exactly
/// once, by its <see cref="BufferSpec.Init"/> or by one task; a task depends on the tasks that produce what it reads.
/// Check a spec with <see cref="JobValidator.Validate"/> before anything else uses it; <see cref="JobPlan.Of"/> orders
/// it. The JSON form is described in <c>Fabric.Core/Jobs/README.md</c> (<see cref="JobJson"/>).
/// <para>
/// Records compare <see cref="ImmutableArray{T}"/> and <c>byte[]</c> fields by reference, so two equal specs decoded
/// separately are not <c>Equals</c>; compare their <see cref="JobJson.Write"/> text instead.
/// </para>
/// </summary>
[MessagePackObject]
[Manifest("JobSpec")]
public sealed record JobSpec(
    [property: Key(0)] string Name,
    [property: Key(1)] ImmutableArray<BufferSpec> Buffers,
    [property: Key(2)] ImmutableArray<TaskSpec> Tasks) : IFabricMessage
{
    /// <summary>The buffer named <paramref name="name"/> (the first, if the name is declared twice), or null.</summary>
    public BufferSpec? Buffer(string name) => ByName.GetValue(this, Index).GetValueOrDefault(name);

    // Looked up for every task (its memory need): an index per spec instance keeps a wide job's validation and planning
    // linear. Kept beside the record, not in it, so that it takes no part in the record's equality.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<JobSpec, Dictionary<string, BufferSpec>> ByName = new();

    private static Dictionary<string, BufferSpec> Index(JobSpec spec)
    {
        var index = new Dictionary<string, BufferSpec>(StringComparer.Ordinal);
        if (!spec.Buffers.IsDefault)
            foreach (var buffer in spec.Buffers)
                if (buffer?.Name is { } name) index.TryAdd(name, buffer);
        return index;
    }
}

/// <summary>
/// A buffer of <paramref name="Size"/> bytes. <paramref name="Init"/> set makes it a job input; <paramref name="Output"/>
/// makes its final value a job result, fetched by the user and checked against <see cref="JobReference"/>.
/// </summary>
[MessagePackObject]
public sealed record BufferSpec(
    [property: Key(0)] string Name,
    [property: Key(1)] long Size,
    [property: Key(2)] BufferInit? Init,
    [property: Key(3)] bool Output)
{
    [IgnoreMember] public bool IsInput => Init is not null;
}

/// <summary>How an input buffer gets its bytes.</summary>
public enum InitKind
{
    /// <summary>All zero bytes.</summary>
    Zero = 0,
    /// <summary>The bytes of <see cref="BufferInit.Data"/>, whose length must equal the buffer's size.</summary>
    Inline = 1,
    /// <summary>Size/4 float32 values in [-1, 1) times the scale, from SplitMix64 seeded by <see cref="BufferInit.Seed"/>.</summary>
    RandomFloats = 2,
    /// <summary>Size/4 float32 values, value i = i × scale.</summary>
    Ramp = 3,
}

/// <summary>
/// The initial data of an input buffer. <paramref name="Data"/> is used by <see cref="InitKind.Inline"/> only,
/// <paramref name="Seed"/> by <see cref="InitKind.RandomFloats"/> only, <paramref name="Scale"/> by RandomFloats and
/// Ramp, where 0 means 1.
/// </summary>
[MessagePackObject]
public sealed record BufferInit(
    [property: Key(0)] InitKind Kind,
    [property: Key(1)] byte[]? Data,
    [property: Key(2)] ulong Seed,
    [property: Key(3)] float Scale)
{
    public static BufferInit Zero { get; } = new(InitKind.Zero, null, 0, 0);
    public static BufferInit Inline(byte[] data) => new(InitKind.Inline, data, 0, 0);
    public static BufferInit RandomFloats(ulong seed, float scale = 1f) => new(InitKind.RandomFloats, null, seed, scale);
    public static BufferInit Ramp(float scale = 1f) => new(InitKind.Ramp, null, 0, scale);

    /// <summary>The scale to multiply by: <see cref="Scale"/>, or 1 when it is 0.</summary>
    [IgnoreMember] public float EffectiveScale => Scale == 0f ? 1f : Scale;

    /// <summary>
    /// The initial bytes of an input buffer (float values little-endian). Throws <see cref="ArgumentException"/> when
    /// the buffer has no <see cref="BufferSpec.Init"/> or the init does not fit its size (the validator reports those).
    /// </summary>
    public static byte[] Materialize(BufferSpec buffer)
    {
        var init = buffer.Init ?? throw new ArgumentException($"buffer '{buffer.Name}' is not a job input: it has no initial data", nameof(buffer));
        if (buffer.Size <= 0 || buffer.Size > Array.MaxLength)
            throw new ArgumentException($"buffer '{buffer.Name}' has size {buffer.Size}, which cannot be materialized on the host", nameof(buffer));
        var bytes = new byte[buffer.Size];
        switch (init.Kind)
        {
            case InitKind.Zero:
                break;
            case InitKind.Inline:
                if (init.Data is null || init.Data.Length != buffer.Size)
                    throw new ArgumentException($"buffer '{buffer.Name}' has {buffer.Size} bytes but its inline data has {init.Data?.Length ?? 0}", nameof(buffer));
                init.Data.CopyTo(bytes, 0);
                break;
            case InitKind.RandomFloats:
                RequireFloats(buffer);
                var state = init.Seed;
                for (var i = 0; i < bytes.Length / 4; i++)
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), NextUnitFloat(ref state) * init.EffectiveScale);
                break;
            case InitKind.Ramp:
                RequireFloats(buffer);
                for (var i = 0; i < bytes.Length / 4; i++)
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), i * init.EffectiveScale);
                break;
            default:
                throw new ArgumentException($"buffer '{buffer.Name}' has the unknown init kind {init.Kind}", nameof(buffer));
        }
        return bytes;
    }

    /// <summary>One SplitMix64 step mapped to a float in [-1, 1).</summary>
    private static float NextUnitFloat(ref ulong state)
    {
        state += 0x9E3779B97F4A7C15UL;
        var z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (float)((z >> 40) * (1.0 / (1 << 24)) * 2 - 1);
    }

    private static void RequireFloats(BufferSpec buffer)
    {
        if (buffer.Size % 4 != 0)
            throw new ArgumentException($"buffer '{buffer.Name}' holds float32 values but its size {buffer.Size} is not a multiple of 4", nameof(buffer));
    }
}

/// <summary>
/// A task: <paramref name="Steps"/> run in order on one device that satisfies <paramref name="Needs"/>.
/// <paramref name="MaxAttempts"/>: the attempts it gets in all, whatever ends them (1: no retry); 0 means the
/// default, 5 failures of its own or 20 attempts where lost nodes explain the failures.
/// </summary>
[MessagePackObject]
public sealed record TaskSpec(
    [property: Key(0)] string Name,
    [property: Key(1)] ImmutableArray<KernelStep> Steps,
    [property: Key(2)] TaskNeeds Needs,
    [property: Key(3)] int MaxAttempts = 0)
{
    /// <summary>The most attempts a job spec may give a task.</summary>
    public const int AttemptsLimit = 100;
}

/// <summary>
/// What a task asks of its device. <paramref name="MemoryBytes"/> 0 means computed: the sum of the sizes of every
/// buffer the task reads or writes. <paramref name="Node"/> and <paramref name="DeviceKind"/> null mean any; they are
/// hard (a task pinned to a node that is gone waits for it, then fails the job). <paramref name="Prefer"/> is soft: a
/// node (<c>n2</c>) or a device (<c>n2/dev1</c>) tried first while it is there and has room, others otherwise.
/// </summary>
[MessagePackObject]
public sealed record TaskNeeds(
    [property: Key(0)] long MemoryBytes,
    [property: Key(1)] string? Node,
    [property: Key(2)] string? DeviceKind,
    [property: Key(3)] string? Prefer = null)
{
    public static TaskNeeds Any { get; } = new(0, null, null);
}

/// <summary>
/// One kernel call over whole buffers: <paramref name="Dst"/> is written from the sources <paramref name="A"/> and
/// <paramref name="B"/> as <paramref name="Kernel"/> (one of <see cref="Kernels"/>) uses them. <paramref name="Alpha"/>
/// is for scale and axpy, <paramref name="M"/>/<paramref name="N"/>/<paramref name="K"/> for matmul,
/// <paramref name="Pattern"/> for fill; the others are 0.
/// </summary>
[MessagePackObject]
public sealed record KernelStep(
    [property: Key(0)] string Kernel,
    [property: Key(1)] string Dst,
    [property: Key(2)] string? A,
    [property: Key(3)] string? B,
    [property: Key(4)] float Alpha,
    [property: Key(5)] uint M,
    [property: Key(6)] uint N,
    [property: Key(7)] uint K,
    [property: Key(8)] uint Pattern)
{
    public static KernelStep Fill(string dst, uint pattern) => new(Kernels.Fill, dst, null, null, 0, 0, 0, 0, pattern);
    public static KernelStep Copy(string dst, string a) => new(Kernels.Copy, dst, a, null, 0, 0, 0, 0, 0);
    public static KernelStep Add(string dst, string a, string b) => new(Kernels.Add, dst, a, b, 0, 0, 0, 0, 0);
    public static KernelStep Scale(string dst, string a, float alpha) => new(Kernels.Scale, dst, a, null, alpha, 0, 0, 0, 0);
    /// <summary>dst = alpha·a + b.</summary>
    public static KernelStep Axpy(string dst, string a, string b, float alpha) => new(Kernels.Axpy, dst, a, b, alpha, 0, 0, 0, 0);
    /// <summary>dst(m×n) = a(m×k)·b(k×n), row-major.</summary>
    public static KernelStep MatMul(string dst, string a, string b, uint m, uint n, uint k) => new(Kernels.MatMul, dst, a, b, 0, m, n, k, 0);
    public static KernelStep ReduceSum(string dst, string a) => new(Kernels.ReduceSum, dst, a, null, 0, 0, 0, 0, 0);
    public static KernelStep Checksum(string dst, string a) => new(Kernels.Checksum, dst, a, null, 0, 0, 0, 0, 0);

    /// <summary>The buffers the step reads, in operand order (a, then b), as its kernel uses them.</summary>
    [IgnoreMember]
    public IEnumerable<string> Sources
    {
        get
        {
            var (usesA, usesB) = Kernels.Operands(Kernel);
            if (usesA && A is not null) yield return A;
            if (usesB && B is not null) yield return B;
        }
    }
}

/// <summary>The kernel names a <see cref="KernelStep"/> may use; each works on whole buffers.</summary>
public static class Kernels
{
    /// <summary>dst filled with the 4-byte little-endian pattern (any size).</summary>
    public const string Fill = "fill";
    /// <summary>dst = a (same size).</summary>
    public const string Copy = "copy";
    /// <summary>dst = a + b, float32 (all the same size).</summary>
    public const string Add = "add";
    /// <summary>dst = alpha·a, float32.</summary>
    public const string Scale = "scale";
    /// <summary>dst = alpha·a + b, float32.</summary>
    public const string Axpy = "axpy";
    /// <summary>dst(M×N) = a(M×K)·b(K×N), row-major float32.</summary>
    public const string MatMul = "matmul";
    /// <summary>dst (4 bytes) = sum of a's float32 values, accumulated in double.</summary>
    public const string ReduceSum = "reduce-sum";
    /// <summary>dst (4 bytes) = CRC-32C of a's bytes.</summary>
    public const string Checksum = "checksum";

    public static ImmutableArray<string> All { get; } = [Fill, Copy, Add, Scale, Axpy, MatMul, ReduceSum, Checksum];

    public static bool IsKnown(string kernel) => All.Contains(kernel, StringComparer.Ordinal);

    /// <summary>Which sources the kernel reads; (false, false) for an unknown kernel.</summary>
    public static (bool A, bool B) Operands(string kernel) => kernel switch
    {
        Fill => (false, false),
        Copy or Scale or ReduceSum or Checksum => (true, false),
        Add or Axpy or MatMul => (true, true),
        _ => (false, false),
    };
}
