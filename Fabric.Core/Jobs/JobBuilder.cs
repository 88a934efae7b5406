using System.Buffers.Binary;
using System.Collections.Immutable;

namespace Fabric.Core.Jobs;

/// <summary>
/// Writes a <see cref="JobSpec"/> in code:
/// <code>
/// var job = new JobBuilder("demo")
///     .RandomInput("x", 1024, seed: 1)
///     .Buffer("y", 4096)
///     .Output("sum", 4)
///     .Task("double", t => t.Scale("y", "x", 2f))
///     .Task("total", t => t.ReduceSum("sum", "y"))
///     .Build();
/// </code>
/// Sizes of float buffers are in bytes (4 per value); <see cref="Build"/> validates the whole job.
/// </summary>
public sealed class JobBuilder(string name)
{
    private readonly List<BufferSpec> _buffers = [];
    private readonly List<TaskSpec> _tasks = [];

    /// <summary>An input holding <paramref name="values"/> as little-endian float32.</summary>
    public JobBuilder Input(string buffer, float[] values)
    {
        var data = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        return Add(new BufferSpec(buffer, data.Length, BufferInit.Inline(data), false));
    }

    /// <summary>An input holding a copy of <paramref name="data"/>.</summary>
    public JobBuilder Input(string buffer, byte[] data) =>
        Add(new BufferSpec(buffer, data.Length, BufferInit.Inline(data.ToArray()), false));

    /// <summary>An input of <paramref name="count"/> float32 values in [-scale, scale) from SplitMix64 seeded by <paramref name="seed"/>.</summary>
    public JobBuilder RandomInput(string buffer, long count, ulong seed, float scale = 1f) =>
        Add(new BufferSpec(buffer, count * 4, BufferInit.RandomFloats(seed, scale), false));

    /// <summary>An input of <paramref name="count"/> float32 values, value i = i × scale.</summary>
    public JobBuilder Ramp(string buffer, long count, float scale = 1f) =>
        Add(new BufferSpec(buffer, count * 4, BufferInit.Ramp(scale), false));

    /// <summary>An input of <paramref name="size"/> zero bytes.</summary>
    public JobBuilder Zeros(string buffer, long size) =>
        Add(new BufferSpec(buffer, size, BufferInit.Zero, false));

    /// <summary>An intermediate buffer of <paramref name="size"/> bytes, written by one task.</summary>
    public JobBuilder Buffer(string buffer, long size) => Add(new BufferSpec(buffer, size, null, false));

    /// <summary>A result buffer of <paramref name="size"/> bytes, written by one task and fetched by the user.</summary>
    public JobBuilder Output(string buffer, long size) => Add(new BufferSpec(buffer, size, null, true));

    /// <summary>Makes buffers already declared (inputs or intermediates) job results too.</summary>
    public JobBuilder MarkOutput(params string[] buffers)
    {
        foreach (var buffer in buffers)
        {
            var index = _buffers.FindIndex(b => b.Name == buffer);
            if (index < 0) throw new FabricException(FabricError.NotFound($"cannot mark '{buffer}' as an output: job '{name}' declares no such buffer"));
            _buffers[index] = _buffers[index] with { Output = true };
        }
        return this;
    }

    /// <summary>A task whose steps <paramref name="steps"/> writes, run where <paramref name="needs"/> allow (any device by default).</summary>
    public JobBuilder Task(string task, Action<TaskBuilder> steps, TaskNeeds? needs = null)
    {
        var builder = new TaskBuilder();
        steps(builder);
        _tasks.Add(new TaskSpec(task, builder.Steps, needs ?? TaskNeeds.Any));
        return this;
    }

    /// <summary>The job; throws <see cref="FabricException"/> with the <see cref="JobValidator"/>'s error when it is not valid.</summary>
    public JobSpec Build()
    {
        var spec = new JobSpec(name, [.. _buffers], [.. _tasks]);
        JobValidator.ThrowIfInvalid(spec);
        return spec;
    }

    private JobBuilder Add(BufferSpec buffer)
    {
        _buffers.Add(buffer);
        return this;
    }
}

/// <summary>The steps of one task, in order; each method appends one <see cref="KernelStep"/>.</summary>
public sealed class TaskBuilder
{
    private readonly ImmutableArray<KernelStep>.Builder _steps = ImmutableArray.CreateBuilder<KernelStep>();

    internal ImmutableArray<KernelStep> Steps => _steps.ToImmutable();

    /// <summary>dst filled with the 4-byte little-endian <paramref name="pattern"/>.</summary>
    public TaskBuilder Fill(string dst, uint pattern) => Add(KernelStep.Fill(dst, pattern));

    /// <summary>dst = a.</summary>
    public TaskBuilder Copy(string dst, string a) => Add(KernelStep.Copy(dst, a));

    /// <summary>dst = a + b.</summary>
    public TaskBuilder Add(string dst, string a, string b) => Add(KernelStep.Add(dst, a, b));

    /// <summary>dst = alpha·a.</summary>
    public TaskBuilder Scale(string dst, string a, float alpha) => Add(KernelStep.Scale(dst, a, alpha));

    /// <summary>dst = alpha·a + b.</summary>
    public TaskBuilder Axpy(string dst, string a, string b, float alpha) => Add(KernelStep.Axpy(dst, a, b, alpha));

    /// <summary>dst(m×n) = a(m×k)·b(k×n), row-major.</summary>
    public TaskBuilder MatMul(string dst, string a, string b, uint m, uint n, uint k) => Add(KernelStep.MatMul(dst, a, b, m, n, k));

    /// <summary>dst (4 bytes) = the sum of a's float32 values.</summary>
    public TaskBuilder ReduceSum(string dst, string a) => Add(KernelStep.ReduceSum(dst, a));

    /// <summary>dst (4 bytes) = CRC-32C of a's bytes.</summary>
    public TaskBuilder Checksum(string dst, string a) => Add(KernelStep.Checksum(dst, a));

    /// <summary>Any step, e.g. one read from JSON.</summary>
    public TaskBuilder Step(KernelStep step) => Add(step);

    private TaskBuilder Add(KernelStep step)
    {
        _steps.Add(step);
        return this;
    }
}
