using Fabric.Core.Commands;

namespace Fabric.Core.Jobs;

/// <summary>
/// Turns a task into a Fabric command buffer (<see cref="CommandBufferBuilder"/>), one command per step except axpy,
/// which is two: COPY dst ← b, then AXPY dst += alpha·a. When an axpy writes its own operand a in place (dst = a ≠ b)
/// the copy would destroy a, so it is compiled as SCALE dst = alpha·a, then ADD dst = dst + b, which rounds the same
/// way (the device rounds the product before the add).
/// </summary>
public static class TaskCompiler
{
    /// <summary>
    /// The command buffer that runs <paramref name="task"/>'s steps on a device where every buffer it names is mapped
    /// at <paramref name="iovaOf"/>(name) and has <paramref name="sizeOf"/>(name) bytes. The task should come from a
    /// spec <see cref="JobValidator"/> accepted; an unknown kernel or a missing operand throws
    /// <see cref="FabricException"/> (EINVAL).
    /// </summary>
    public static byte[] Compile(TaskSpec task, Func<string, ulong> iovaOf, Func<string, long> sizeOf)
    {
        ArgumentNullException.ThrowIfNull(task);
        var builder = new CommandBufferBuilder();
        for (var i = 0; i < task.Steps.Length; i++)
        {
            var step = task.Steps[i];
            string Operand(string? name, string role) => name
                ?? throw new FabricException(FabricError.Invalid($"task {task.Name} step {i + 1} ({step.Kernel}) needs the source buffer {role}"));

            var dst = iovaOf(step.Dst);
            var bytes = (ulong)sizeOf(step.Dst);
            switch (step.Kernel)
            {
                case Kernels.Fill:
                    builder.Fill(dst, bytes, step.Pattern);
                    break;
                case Kernels.Copy:
                    builder.Copy(dst, iovaOf(Operand(step.A, "a")), bytes);
                    break;
                case Kernels.Add:
                    builder.Add(dst, iovaOf(Operand(step.A, "a")), iovaOf(Operand(step.B, "b")), bytes / 4);
                    break;
                case Kernels.Scale:
                    builder.Scale(dst, iovaOf(Operand(step.A, "a")), bytes / 4, step.Alpha);
                    break;
                case Kernels.Axpy:
                    var a = Operand(step.A, "a");
                    var b = Operand(step.B, "b");
                    if (a == step.Dst && b != step.Dst)
                        builder.Scale(dst, dst, bytes / 4, step.Alpha).Add(dst, dst, iovaOf(b), bytes / 4);
                    else
                        builder.Copy(dst, iovaOf(b), bytes).Axpy(dst, iovaOf(a), bytes / 4, step.Alpha);
                    break;
                case Kernels.MatMul:
                    builder.MatMul(dst, iovaOf(Operand(step.A, "a")), iovaOf(Operand(step.B, "b")), step.M, step.N, step.K);
                    break;
                case Kernels.ReduceSum:
                    var sum = Operand(step.A, "a");
                    builder.ReduceSum(dst, iovaOf(sum), (ulong)sizeOf(sum) / 4);
                    break;
                case Kernels.Checksum:
                    var source = Operand(step.A, "a");
                    builder.Checksum(dst, iovaOf(source), (ulong)sizeOf(source));
                    break;
                default:
                    throw new FabricException(FabricError.Invalid(
                        $"task {task.Name} step {i + 1} uses the unknown kernel '{step.Kernel}'; known: {string.Join(", ", Kernels.All)}"));
            }
        }
        return builder.Build();
    }

    /// <summary>How many commands <see cref="Compile"/> emits for <paramref name="step"/>.</summary>
    public static int CommandCount(KernelStep step) => step.Kernel == Kernels.Axpy ? 2 : 1;
}
