using System.Globalization;
using System.Runtime.CompilerServices;
using Fabric.Core.Jobs.Internal;

namespace Fabric.Core.Jobs;

/// <summary>
/// Checks a <see cref="JobSpec"/> before it is planned or run. Answers the first problem found as one
/// <see cref="FabricError"/> whose sentence names the task, step, kernel and buffers involved:
/// <list type="bullet">
/// <item>EINVAL: empty job, missing or duplicate names, size ≤ 0, bad initial data, unknown kernel, a missing or extra
/// operand, a size that does not fit the kernel, a buffer produced twice, a cycle, a buffer nothing produces.</item>
/// <item>ENOENT: a step names an undeclared buffer; a task reads a buffer no task produces and the job does not initialize.</item>
/// <item>ENOMEM: a task needs more memory than the largest device has.</item>
/// </list>
/// </summary>
public static class JobValidator
{
    /// <summary>Null when <paramref name="spec"/> is valid and every task fits a device of <paramref name="largestDeviceMemory"/> bytes.</summary>
    public static FabricError? Validate(JobSpec spec, long largestDeviceMemory)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return Structure.GetValue(spec, s => new StrongBox<FabricError?>(CheckShape(s) ?? CheckSteps(s) ?? CheckProducers(s) ?? CheckCycles(s))).Value
               ?? CheckMemory(spec, largestDeviceMemory);
    }

    // What is wrong with a spec's structure, found once per instance: the gateway validates a job, and planning it (on the
    // gateway, and again in the job's state) checks it first; a spec is immutable. Memory is checked each time: the
    // largest device differs between callers.
    private static readonly ConditionalWeakTable<JobSpec, StrongBox<FabricError?>> Structure = new();

    /// <summary>Throws <see cref="FabricException"/> with the error of <see cref="Validate"/>, if any.</summary>
    public static void ThrowIfInvalid(JobSpec spec, long largestDeviceMemory = long.MaxValue)
    {
        if (Validate(spec, largestDeviceMemory) is { } error) throw new FabricException(error);
    }

    /// <summary>The memory a task needs: its own figure, or the sum of the sizes of every buffer it touches.</summary>
    public static long MemoryNeed(JobSpec spec, TaskSpec task)
    {
        if (task.Needs is { MemoryBytes: > 0 } needs) return needs.MemoryBytes;
        var flow = TaskFlow.Of(task);
        long total = 0;
        foreach (var name in flow.Inputs)
            if (spec.Buffer(name) is { } buffer) total = SaturatingAdd(total, buffer.Size);
        foreach (var name in flow.Outputs)
            if (!flow.Inputs.Contains(name) && spec.Buffer(name) is { } buffer) total = SaturatingAdd(total, buffer.Size);
        return total;
    }

    /// <summary>A byte count as people read it: <c>3.0 GiB</c>, <c>512.0 KiB</c>, <c>12 bytes</c>.</summary>
    public static string FormatBytes(long bytes)
    {
        static string One(double value, string unit) => value.ToString("0.0", CultureInfo.InvariantCulture) + " " + unit;
        return bytes switch
        {
            >= 1L << 40 => One(bytes / (double)(1L << 40), "TiB"),
            >= 1L << 30 => One(bytes / (double)(1L << 30), "GiB"),
            >= 1L << 20 => One(bytes / (double)(1L << 20), "MiB"),
            >= 1L << 10 => One(bytes / (double)(1L << 10), "KiB"),
            1 => "1 byte",
            _ => $"{bytes} bytes",
        };
    }

    private static FabricError? CheckShape(JobSpec spec)
    {
        if (string.IsNullOrWhiteSpace(spec.Name)) return FabricError.Invalid("the job has no name");
        var buffers = spec.Buffers.IsDefault ? [] : spec.Buffers;
        var tasks = spec.Tasks.IsDefault ? [] : spec.Tasks;
        if (tasks.IsEmpty) return FabricError.Invalid($"job '{spec.Name}' has no tasks");

        var bufferNames = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < buffers.Length; i++)
        {
            var buffer = buffers[i];
            if (buffer is null || string.IsNullOrWhiteSpace(buffer.Name))
                return FabricError.Invalid($"buffer #{i + 1} of job '{spec.Name}' has no name");
            if (!bufferNames.Add(buffer.Name))
                return FabricError.Invalid($"job '{spec.Name}' declares the buffer '{buffer.Name}' twice");
            if (buffer.Size <= 0)
                return FabricError.Invalid($"buffer '{buffer.Name}' has size {buffer.Size}; a buffer needs at least 1 byte");
            if (buffer.Init is { } init && CheckInit(buffer, init) is { } initError) return initError;
        }

        var taskNames = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < tasks.Length; i++)
        {
            var task = tasks[i];
            if (task is null || string.IsNullOrWhiteSpace(task.Name))
                return FabricError.Invalid($"task #{i + 1} of job '{spec.Name}' has no name");
            if (!taskNames.Add(task.Name))
                return FabricError.Invalid($"job '{spec.Name}' declares the task '{task.Name}' twice");
            if (task.Steps.IsDefaultOrEmpty)
                return FabricError.Invalid($"task {task.Name} has no steps");
            if (task.Needs is null)
                return FabricError.Invalid($"task {task.Name} has no needs (use TaskNeeds.Any)");
            if (task.Needs.MemoryBytes < 0)
                return FabricError.Invalid($"task {task.Name} asks for {task.Needs.MemoryBytes} bytes of memory; use 0 to have it computed");
            if (task.Needs.Prefer is { } prefer && (prefer.Length == 0 || prefer.Contains('/') && !DeviceId.TryParse(prefer, "", out _)))
                return FabricError.Invalid($"task {task.Name} prefers '{prefer}', which is neither a node name nor a device such as n1/dev0");
            if (task.MaxAttempts is < 0 or > TaskSpec.AttemptsLimit)
                return FabricError.Invalid($"task {task.Name} asks for {task.MaxAttempts} attempts; use 1 to {TaskSpec.AttemptsLimit}, or 0 for the default");
            for (var s = 0; s < task.Steps.Length; s++)
                if (task.Steps[s] is null)
                    return FabricError.Invalid($"task {task.Name} step {s + 1} is missing");
        }
        return null;
    }

    private static FabricError? CheckInit(BufferSpec buffer, BufferInit init) => init.Kind switch
    {
        InitKind.Zero => null,
        InitKind.Inline when init.Data is null =>
            FabricError.Invalid($"input '{buffer.Name}' is inline but has no data"),
        InitKind.Inline when init.Data.Length != buffer.Size =>
            FabricError.Invalid($"input '{buffer.Name}' has size {buffer.Size} but its inline data has {init.Data.Length} bytes"),
        InitKind.Inline => null,
        InitKind.RandomFloats or InitKind.Ramp when buffer.Size % 4 != 0 =>
            FabricError.Invalid($"input '{buffer.Name}' is initialized with {init.Kind} float32 values but its size {buffer.Size} is not a multiple of 4"),
        InitKind.RandomFloats or InitKind.Ramp when !float.IsFinite(init.Scale) =>
            FabricError.Invalid($"input '{buffer.Name}' has the scale {init.Scale}, which is not a finite number"),
        InitKind.RandomFloats or InitKind.Ramp => null,
        _ => FabricError.Invalid($"input '{buffer.Name}' has the unknown init kind {(int)init.Kind}"),
    };

    private static FabricError? CheckSteps(JobSpec spec)
    {
        foreach (var task in spec.Tasks)
            for (var s = 0; s < task.Steps.Length; s++)
                if (CheckStep(spec, task, s) is { } error) return error;
        return null;
    }

    private static FabricError? CheckStep(JobSpec spec, TaskSpec task, int index)
    {
        var step = task.Steps[index];
        if (step.Kernel is null || !Kernels.IsKnown(step.Kernel))
            return FabricError.Invalid($"task {task.Name} step {index + 1} uses the unknown kernel '{step.Kernel}'; known: {string.Join(", ", Kernels.All)}");
        var where = new StepAt(task, index);

        var (usesA, usesB) = Kernels.Operands(step.Kernel);
        if (string.IsNullOrEmpty(step.Dst)) return FabricError.Invalid($"{where} has no destination buffer");
        if (usesA && string.IsNullOrEmpty(step.A)) return FabricError.Invalid($"{where} needs the source buffer a");
        if (usesB && string.IsNullOrEmpty(step.B)) return FabricError.Invalid($"{where} needs the source buffer b");
        if (!usesA && step.A is not null) return FabricError.Invalid($"{where} takes no source a but names '{step.A}'");
        if (!usesB && step.B is not null) return FabricError.Invalid($"{where} takes no source b but names '{step.B}'");

        foreach (var (role, name) in (ReadOnlySpan<(string, string?)>)[("dst", step.Dst), ("a", usesA ? step.A : null), ("b", usesB ? step.B : null)])
            if (name is not null && spec.Buffer(name) is null)
                return FabricError.NotFound($"{where} names the buffer '{name}' as {role}, but job '{spec.Name}' declares no such buffer");

        var dst = spec.Buffer(step.Dst)!;
        var a = step.A is null ? null : spec.Buffer(step.A);
        var b = step.B is null ? null : spec.Buffer(step.B);
        switch (step.Kernel)
        {
            case Kernels.Fill:
                return null;
            case Kernels.Copy:
                return SameSize(where, false, ("dst", dst), ("a", a!));
            case Kernels.Add or Kernels.Axpy:
                return SameSize(where, true, ("dst", dst), ("a", a!), ("b", b!));
            case Kernels.Scale:
                return SameSize(where, true, ("dst", dst), ("a", a!));
            case Kernels.ReduceSum:
                return Exactly4(where, dst) ?? FloatSized(where, "a", a!);
            case Kernels.Checksum:
                return Exactly4(where, dst);
            case Kernels.MatMul:
                if (step.M == 0 || step.N == 0 || step.K == 0)
                    return FabricError.Invalid($"{where} has the shape M={step.M} N={step.N} K={step.K}; each must be at least 1");
                if (step.Dst == step.A || step.Dst == step.B)
                    return FabricError.Invalid($"{where} writes '{step.Dst}', which it also reads; matmul cannot run in place");
                return Shaped(where, "a", a!, step.M, step.K, "M×K")
                       ?? Shaped(where, "b", b!, step.K, step.N, "K×N")
                       ?? Shaped(where, "dst", dst, step.M, step.N, "M×N");
            default:
                return null;
        }
    }

    /// <summary>Where a step is, as error sentences name it (<c>task t1 step 2 (scale)</c>); formatted only for an error.</summary>
    private readonly record struct StepAt(TaskSpec Task, int Index)
    {
        public override string ToString() => $"task {Task.Name} step {Index + 1} ({Task.Steps[Index].Kernel})";
    }

    private static FabricError? SameSize(StepAt where, bool floats, params ReadOnlySpan<(string Role, BufferSpec Buffer)> operands)
    {
        var size = operands[0].Buffer.Size;
        foreach (var operand in operands)
            if (operand.Buffer.Size != size)
                return FabricError.Invalid(
                    $"{where} needs buffers of one size, but {string.Join(", ", operands.ToArray().Select(o => $"{o.Role} '{o.Buffer.Name}' has {o.Buffer.Size} bytes"))}");
        return floats ? FloatSized(where, operands[0].Role, operands[0].Buffer) : null;
    }

    private static FabricError? FloatSized(StepAt where, string role, BufferSpec buffer) =>
        buffer.Size % 4 == 0 ? null
        : FabricError.Invalid($"{where} works on float32 values, but {role} '{buffer.Name}' has {buffer.Size} bytes, not a multiple of 4");

    private static FabricError? Exactly4(StepAt where, BufferSpec dst) =>
        dst.Size == 4 ? null
        : FabricError.Invalid($"{where} writes one 4-byte value, but dst '{dst.Name}' has {dst.Size} bytes");

    private static FabricError? Shaped(StepAt where, string role, BufferSpec buffer, uint rows, uint columns, string shape)
    {
        var expected = (UInt128)rows * columns * 4;
        return expected == (UInt128)buffer.Size ? null
            : FabricError.Invalid($"{where} needs {role} '{buffer.Name}' to be {shape} = {rows}×{columns} float32 ({expected} bytes), but it has {buffer.Size} bytes");
    }

    private static FabricError? CheckProducers(JobSpec spec)
    {
        var producer = new Dictionary<string, string>(StringComparer.Ordinal);
        var flows = spec.Tasks.ToDictionary(t => t.Name, TaskFlow.Of, StringComparer.Ordinal);
        foreach (var task in spec.Tasks)
            foreach (var output in flows[task.Name].Outputs)
            {
                var step = flows[task.Name].FirstWrite(output) + 1;
                if (spec.Buffer(output)!.IsInput)
                    return FabricError.Invalid($"task {task.Name} step {step} writes '{output}', which the job initializes; a buffer is produced once");
                if (producer.TryGetValue(output, out var other))
                    return FabricError.Invalid($"tasks {other} and {task.Name} both write '{output}'; a buffer is produced by one task only");
                producer[output] = task.Name;
            }

        foreach (var task in spec.Tasks)
        {
            var flow = flows[task.Name];
            foreach (var input in flow.Inputs)
            {
                if (spec.Buffer(input)!.IsInput) continue;
                if (!producer.TryGetValue(input, out var by))
                    return FabricError.NotFound($"task {task.Name} reads '{input}', which no task produces and the job does not initialize");
                if (by == task.Name)
                    return FabricError.Invalid(
                        $"task {task.Name} step {flow.FirstRead(input) + 1} reads '{input}' before its step {flow.FirstWrite(input) + 1} writes it, so the task depends on itself");
            }
        }

        foreach (var buffer in spec.Buffers)
            if (!buffer.IsInput && !producer.ContainsKey(buffer.Name))
                return FabricError.Invalid($"buffer '{buffer.Name}' is neither initialized nor written by any task{(buffer.Output ? ", so the job has no result for it" : "")}");
        return null;
    }

    /// <summary>Depth-first search over task → producer-of-its-inputs edges; a back edge closes a cycle.</summary>
    private static FabricError? CheckCycles(JobSpec spec)
    {
        var producer = new Dictionary<string, string>(StringComparer.Ordinal);
        var flows = spec.Tasks.ToDictionary(t => t.Name, TaskFlow.Of, StringComparer.Ordinal);
        foreach (var task in spec.Tasks)
            foreach (var output in flows[task.Name].Outputs) producer[output] = task.Name;

        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1 on the path, 2 done
        var path = new List<(string Task, string Via)>();

        FabricError? Visit(string task)
        {
            state[task] = 1;
            foreach (var input in flows[task].Inputs)
            {
                if (!producer.TryGetValue(input, out var from)) continue;
                path.Add((task, input));
                if (state.GetValueOrDefault(from) == 1) return CycleError(path, from, producer);
                if (state.GetValueOrDefault(from) == 0 && Visit(from) is { } error) return error;
                path.RemoveAt(path.Count - 1);
            }
            state[task] = 2;
            return null;
        }

        foreach (var task in spec.Tasks)
            if (state.GetValueOrDefault(task.Name) == 0 && Visit(task.Name) is { } error)
                return error;
        return null;
    }

    private static FabricError CycleError(List<(string Task, string Via)> path, string closing, Dictionary<string, string> producer)
    {
        var start = path.FindIndex(p => p.Task == closing);
        var cycle = path.Skip(start).Reverse().ToList(); // in data-flow order: producer before reader
        var names = cycle.Select(c => producer[c.Via]).Append(producer[cycle[0].Via]);
        var reads = cycle.Select(c => $"{c.Task} reads '{c.Via}' from {producer[c.Via]}");
        return FabricError.Invalid($"the tasks {string.Join(" → ", names)} form a cycle: {string.Join(", ", reads)}");
    }

    private static FabricError? CheckMemory(JobSpec spec, long largestDeviceMemory)
    {
        foreach (var task in spec.Tasks)
        {
            var need = MemoryNeed(spec, task);
            if (need > largestDeviceMemory)
                return new FabricError(ErrorCode.ENOMEM,
                    $"task {task.Name} needs {FormatBytes(need)}; the largest device has {FormatBytes(largestDeviceMemory)}");
        }
        return null;
    }

    private static long SaturatingAdd(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;
}
