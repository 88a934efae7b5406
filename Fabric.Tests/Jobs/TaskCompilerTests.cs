using System.Buffers.Binary;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Core.Jobs;
using Fabric.Devices.Internal.Commands;
using Fabric.Tests.Commands;

namespace Fabric.Tests.Jobs;

public sealed class TaskCompilerTests
{
    private const ulong Base = 0x10_0000;

    /// <summary>Buffers laid out back to back from <see cref="Base"/>, each 64-byte aligned.</summary>
    private static Dictionary<string, ulong> Layout(JobSpec spec)
    {
        var iovas = new Dictionary<string, ulong>();
        var next = Base;
        foreach (var buffer in spec.Buffers)
        {
            iovas[buffer.Name] = next;
            next += ((ulong)buffer.Size + 63) & ~63UL;
        }
        return iovas;
    }

    private static byte[] Compile(JobSpec spec, string task, Dictionary<string, ulong> iovas) =>
        TaskCompiler.Compile(spec.Tasks.Single(t => t.Name == task), name => iovas[name], name => spec.Buffer(name)!.Size);

    private static ushort OpcodeAt(byte[] buffer, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(offset));
    private static uint U32(byte[] buffer, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(offset));
    private static ulong U64(byte[] buffer, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(offset));

    [Fact]
    public void Axpy_compiles_to_a_copy_of_b_then_an_axpy_of_a()
    {
        var spec = JobSamples.ThreeStage();
        var iovas = Layout(spec);

        var buffer = Compile(spec, "left", iovas);

        Assert.Equal(CommandBufferFormat.Magic, U32(buffer, CommandBufferFormat.MagicOffset));
        Assert.Equal(2u, U32(buffer, CommandBufferFormat.CountOffset));
        Assert.Equal((uint)buffer.Length, U32(buffer, CommandBufferFormat.TotalLengthOffset));
        Assert.Equal(16 + 32 + 40, buffer.Length);
        Assert.Equal((ushort)Opcode.Copy, OpcodeAt(buffer, 16));
        Assert.Equal((iovas["u"], iovas["b"], 4096UL), (U64(buffer, 16 + 8), U64(buffer, 16 + 16), U64(buffer, 16 + 24)));
        Assert.Equal((ushort)Opcode.AxpyF32, OpcodeAt(buffer, 48));
        Assert.Equal((iovas["u"], iovas["a"], 1024UL), (U64(buffer, 48 + 8), U64(buffer, 48 + 16), U64(buffer, 48 + 24)));
        Assert.Equal(2f, BinaryPrimitives.ReadSingleLittleEndian(buffer.AsSpan(48 + 32)));
    }

    [Fact]
    public void Reduce_sum_and_checksum_count_the_source()
    {
        var spec = JobSamples.ThreeStage();
        var iovas = Layout(spec);

        var buffer = Compile(spec, "summarize", iovas);

        Assert.Equal(16 + 32 + 32, buffer.Length);
        Assert.Equal((ushort)Opcode.ReduceSumF32, OpcodeAt(buffer, 16));
        Assert.Equal((iovas["total"], iovas["s"], 1024UL), (U64(buffer, 16 + 8), U64(buffer, 16 + 16), U64(buffer, 16 + 24)));
        Assert.Equal((ushort)Opcode.Checksum, OpcodeAt(buffer, 48));
        Assert.Equal((iovas["crc"], iovas["s"], 4096UL), (U64(buffer, 48 + 8), U64(buffer, 48 + 16), U64(buffer, 48 + 24)));
    }

    [Fact]
    public void Every_kernel_compiles_to_its_commands_in_step_order()
    {
        var spec = KernelZoo();
        var iovas = Layout(spec);
        var task = spec.Tasks.Single();

        var buffer = Compile(spec, "zoo", iovas);

        Opcode[] expected =
        [
            Opcode.Fill, Opcode.Copy, Opcode.AddF32, Opcode.ScaleF32, Opcode.Copy, Opcode.AxpyF32,
            Opcode.MatMulF32, Opcode.ReduceSumF32, Opcode.Checksum, Opcode.Copy, Opcode.ScaleF32, Opcode.AddF32,
        ];
        Assert.Equal(task.Steps.Sum(TaskCompiler.CommandCount), (int)U32(buffer, CommandBufferFormat.CountOffset));
        Assert.Equal(expected.Length, (int)U32(buffer, CommandBufferFormat.CountOffset));
        Assert.Equal(16 + expected.Sum(CommandBufferFormat.SizeOf), buffer.Length);
        var offset = 16;
        foreach (var opcode in expected)
        {
            Assert.Equal((ushort)opcode, OpcodeAt(buffer, offset));
            offset += (int)U32(buffer, offset + CommandBufferFormat.CommandSizeOffset);
        }
    }

    [Fact]
    public void An_unknown_kernel_does_not_compile()
    {
        var task = new TaskSpec("t", [new KernelStep("sqrt", "y", "x", null, 0, 0, 0, 0, 0)], TaskNeeds.Any);

        var error = Assert.Throws<FabricException>(() => TaskCompiler.Compile(task, _ => Base, _ => 4));

        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Contains("task t step 1 uses the unknown kernel 'sqrt'", error.Error.Message);
    }

    /// <summary>
    /// Runs every compiled task through the device's decoder and kernels in plan order and checks each buffer against
    /// the host reference: the compiler, the device and the reference agree.
    /// </summary>
    [Theory]
    [InlineData("three-stage")]
    [InlineData("zoo")]
    public void Compiled_tasks_run_on_the_device_kernels_give_the_reference_result(string job)
    {
        var spec = job == "zoo" ? KernelZoo() : JobSamples.ThreeStage();
        var iovas = Layout(spec);
        var view = new PinnedMemoryView(Base, 1 << 16);
        foreach (var buffer in spec.Buffers.Where(b => b.IsInput))
            BufferInit.Materialize(buffer).CopyTo(view.Bytes, view.OffsetOf(iovas[buffer.Name]));
        var plan = JobPlan.Of(spec);

        foreach (var task in plan.Tasks)
        {
            var commands = Compile(spec, task.Name, iovas);
            Assert.True(CommandDecoder.TryDecode(commands, 0, 0, out var program, out var error), error?.ToString());
            foreach (var command in program.Commands)
                KernelExecutor.Execute(command, view, CancellationToken.None);
        }

        var expected = JobReference.Evaluate(spec);
        foreach (var buffer in spec.Buffers)
        {
            var actual = view.Bytes.AsSpan(view.OffsetOf(iovas[buffer.Name]), (int)buffer.Size).ToArray();
            Assert.True(JobReference.Matches(expected[buffer.Name], actual, plan.ProducerKernel(buffer.Name)),
                $"buffer '{buffer.Name}' differs from the reference");
        }
    }

    /// <summary>One task using every kernel once, and axpy in place over its operand a.</summary>
    private static JobSpec KernelZoo() => new JobBuilder("kernel-zoo")
        .RandomInput("a", 6, seed: 11).RandomInput("b", 6, seed: 12)
        .Ramp("m1", 6, 0.25f).RandomInput("m2", 12, seed: 13, scale: 3)
        .Buffer("f", 10).Buffer("c", 24).Buffer("s", 24).Buffer("sc", 24).Buffer("ax", 24)
        .Output("mm", 2 * 4 * 4).Output("sum", 4).Output("crc", 4).Output("inplace", 24)
        .Task("zoo", t => t
            .Fill("f", 0xA1B2C3D4)
            .Copy("c", "a")
            .Add("s", "a", "b")
            .Scale("sc", "s", -1.5f)
            .Axpy("ax", "sc", "c", 0.75f)
            .MatMul("mm", "m1", "m2", 2, 4, 3)
            .ReduceSum("sum", "ax")
            .Checksum("crc", "f")
            .Copy("inplace", "ax")
            .Axpy("inplace", "inplace", "b", 3f))
        .Build();
}
