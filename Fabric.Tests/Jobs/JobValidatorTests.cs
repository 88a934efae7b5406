using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Jobs;

namespace Fabric.Tests.Jobs;

public sealed class JobValidatorTests
{
    private const long GiB = 1L << 30;

    private static BufferSpec Buf(string name, long size, bool input = false, bool output = false) =>
        new(name, size, input ? BufferInit.Zero : null, output);

    private static TaskSpec Task(string name, params KernelStep[] steps) => new(name, [.. steps], TaskNeeds.Any);

    private static JobSpec Job(BufferSpec[] buffers, params TaskSpec[] tasks) => new("j", [.. buffers], [.. tasks]);

    private static FabricError Rejected(JobSpec spec, ErrorCode code, params string[] fragments)
    {
        var error = JobValidator.Validate(spec, GiB);
        Assert.NotNull(error);
        Assert.Equal(code, error.Code);
        foreach (var fragment in fragments) Assert.Contains(fragment, error.Message);
        return error;
    }

    [Fact]
    public void The_sample_jobs_are_valid()
    {
        Assert.Null(JobValidator.Validate(JobSamples.ThreeStage(), GiB));
        Assert.Null(JobValidator.Validate(JobSamples.Diamond(), GiB));
    }

    [Fact]
    public void An_empty_job_is_EINVAL() =>
        Rejected(new JobSpec("j", [], []), ErrorCode.EINVAL, "job 'j' has no tasks");

    [Fact]
    public void Duplicate_task_names_are_EINVAL() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4), Buf("z", 4)],
                Task("t1", KernelStep.Copy("y", "x")), Task("t1", KernelStep.Copy("z", "x"))),
            ErrorCode.EINVAL, "task 't1' twice");

    [Fact]
    public void Duplicate_buffer_names_are_EINVAL() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("x", 8)], Task("t1", KernelStep.Fill("x", 1))),
            ErrorCode.EINVAL, "buffer 'x' twice");

    [Theory]
    [InlineData(0)]
    [InlineData(-4)]
    public void A_size_of_zero_or_less_is_EINVAL(long size) =>
        Rejected(Job([Buf("y", size)], Task("t1", KernelStep.Fill("y", 1))), ErrorCode.EINVAL, "'y' has size " + size);

    [Fact]
    public void Inline_data_of_the_wrong_length_is_EINVAL() =>
        Rejected(Job([new BufferSpec("x", 8, BufferInit.Inline([1, 2, 3]), false), Buf("y", 8)], Task("t1", KernelStep.Copy("y", "x"))),
            ErrorCode.EINVAL, "'x' has size 8 but its inline data has 3 bytes");

    [Fact]
    public void An_unknown_kernel_is_EINVAL_listing_the_known_ones() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4)],
                Task("t3", KernelStep.Copy("y", "x"), KernelStep.Copy("y", "x") with { Kernel = "sqrt" })),
            ErrorCode.EINVAL, "task t3 step 2 uses the unknown kernel 'sqrt'; known: fill, copy, add, scale, axpy, matmul, reduce-sum, checksum");

    [Fact]
    public void A_missing_or_extra_operand_is_EINVAL()
    {
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4)], Task("t1", KernelStep.Add("y", "x", "x") with { B = null })),
            ErrorCode.EINVAL, "task t1 step 1 (add) needs the source buffer b");
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4)], Task("t1", KernelStep.Fill("y", 0) with { A = "x" })),
            ErrorCode.EINVAL, "task t1 step 1 (fill) takes no source a but names 'x'");
    }

    [Fact]
    public void A_step_naming_an_undeclared_buffer_is_ENOENT() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4)], Task("t1", KernelStep.Add("y", "x", "q"))),
            ErrorCode.ENOENT, "task t1 step 1 (add) names the buffer 'q' as b", "declares no such buffer");

    [Fact]
    public void Reading_what_nothing_produces_is_ENOENT() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("tmp", 4), Buf("y", 4), Buf("w", 4)],
                Task("t1", KernelStep.Copy("y", "x")), Task("t2", KernelStep.Copy("w", "tmp"))),
            ErrorCode.ENOENT, "task t2 reads 'tmp', which no task produces and the job does not initialize");

    [Fact]
    public void Two_tasks_writing_one_buffer_is_EINVAL() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4)], Task("t1", KernelStep.Copy("y", "x")), Task("t2", KernelStep.Scale("y", "x", 2))),
            ErrorCode.EINVAL, "tasks t1 and t2 both write 'y'");

    [Fact]
    public void A_task_writing_an_input_is_EINVAL() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4)], Task("t1", KernelStep.Copy("y", "x"), KernelStep.Scale("x", "x", 2))),
            ErrorCode.EINVAL, "task t1 step 2 writes 'x', which the job initializes");

    [Fact]
    public void A_task_reading_its_own_output_before_writing_it_is_EINVAL() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4)], Task("t1", KernelStep.Add("y", "x", "y"))),
            ErrorCode.EINVAL, "task t1 step 1 reads 'y' before its step 1 writes it");

    [Fact]
    public void A_cycle_is_EINVAL_naming_every_task_on_it()
    {
        var spec = Job([Buf("x", 4, input: true), Buf("a", 4), Buf("b", 4), Buf("c", 4), Buf("d", 4, output: true)],
            Task("t0", KernelStep.Add("d", "x", "c")),
            Task("t1", KernelStep.Add("a", "x", "c")),
            Task("t2", KernelStep.Copy("b", "a")),
            Task("t3", KernelStep.Copy("c", "b")));

        var error = Rejected(spec, ErrorCode.EINVAL, "form a cycle", "t2 reads 'a' from t1", "t3 reads 'b' from t2", "t1 reads 'c' from t3");

        Assert.DoesNotContain("t0", error.Message);
    }

    [Fact]
    public void A_buffer_nothing_produces_is_EINVAL() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4), Buf("z", 4, output: true)], Task("t1", KernelStep.Copy("y", "x"))),
            ErrorCode.EINVAL, "buffer 'z' is neither initialized nor written by any task");

    [Theory]
    [InlineData(Kernels.Copy, 8, 4, 0, "dst 'y' has 8 bytes, a 'x' has 4 bytes")]
    [InlineData(Kernels.Add, 4, 4, 8, "b 'w' has 8 bytes")]
    [InlineData(Kernels.Scale, 6, 6, 0, "works on float32 values, but dst 'y' has 6 bytes, not a multiple of 4")]
    [InlineData(Kernels.Axpy, 8, 8, 12, "b 'w' has 12 bytes")]
    [InlineData(Kernels.ReduceSum, 8, 8, 0, "writes one 4-byte value, but dst 'y' has 8 bytes")]
    [InlineData(Kernels.ReduceSum, 4, 7, 0, "a 'x' has 7 bytes, not a multiple of 4")]
    [InlineData(Kernels.Checksum, 2, 7, 0, "dst 'y' has 2 bytes")]
    [InlineData(Kernels.MatMul, 16, 24, 20, "needs b 'w' to be K×N = 3×2 float32 (24 bytes), but it has 20 bytes")]
    public void A_size_that_does_not_fit_the_kernel_is_EINVAL(string kernel, long dst, long a, long b, string fragment)
    {
        var step = new KernelStep(kernel, "y", "x", Kernels.Operands(kernel).B ? "w" : null, 1, 2, 2, 3, 0);
        var buffers = new List<BufferSpec> { Buf("x", a, input: true), Buf("y", dst, output: true) };
        if (b > 0) buffers.Add(Buf("w", b, input: true));

        Rejected(Job([.. buffers], Task("t7", step)), ErrorCode.EINVAL, $"task t7 step 1 ({kernel})", fragment);
    }

    [Fact]
    public void A_matmul_in_place_is_EINVAL() =>
        Rejected(Job([Buf("x", 4, input: true), Buf("y", 4)], Task("t1", KernelStep.Copy("y", "x"), KernelStep.MatMul("y", "y", "x", 1, 1, 1))),
            ErrorCode.EINVAL, "task t1 step 2 (matmul) writes 'y', which it also reads");

    [Fact]
    public void A_task_larger_than_every_device_is_ENOMEM() =>
        Rejected(Job([Buf("x", 2 * GiB, input: true), Buf("z", 4, output: true)],
                Task("t4", KernelStep.Checksum("z", "x")) with { Needs = new TaskNeeds(3 * GiB, null, null) }),
            ErrorCode.ENOMEM, "task t4 needs 3.0 GiB; the largest device has 1.0 GiB");

    [Fact]
    public void A_computed_memory_need_sums_every_buffer_the_task_touches()
    {
        var spec = Job([Buf("x", GiB / 2, input: true), Buf("y", GiB / 2), Buf("z", 4, output: true)],
            Task("t1", KernelStep.Scale("y", "x", 2), KernelStep.Checksum("z", "y")));

        Assert.Equal(GiB + 4, JobValidator.MemoryNeed(spec, spec.Tasks[0]));
        Assert.Null(JobValidator.Validate(spec, GiB + 4));
        Rejected(spec, ErrorCode.ENOMEM, "task t1 needs 1.0 GiB; the largest device has 1.0 GiB");
    }

    [Fact]
    public void Build_throws_the_validator_error()
    {
        var error = Assert.Throws<FabricException>(() => new JobBuilder("j").Ramp("x", 4).Output("y", 16)
            .Task("t1", t => t.Scale("y", "x", 2)).Task("t2", t => t.Copy("y", "x")).Build());

        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Contains("tasks t1 and t2 both write 'y'", error.Error.Message);
    }

    [Fact]
    public void Byte_counts_read_as_people_write_them()
    {
        Assert.Equal(["12 bytes", "1.5 KiB", "3.0 GiB", "2.0 MiB"],
            ImmutableArray.Create(12L, 1536, 3 * GiB, 2 << 20).Select(JobValidator.FormatBytes));
    }
}
