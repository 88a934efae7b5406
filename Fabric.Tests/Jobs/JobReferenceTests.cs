using System.Buffers.Binary;
using System.Text;
using Fabric.Core.Jobs;
using static Fabric.Tests.Jobs.JobSamples;

namespace Fabric.Tests.Jobs;

public sealed class JobReferenceTests
{
    /// <summary>Evaluates a one-task job over inline inputs and returns the value of <paramref name="result"/>.</summary>
    private static byte[] Run(Action<JobBuilder> inputs, long resultSize, Action<TaskBuilder> steps, string result = "r")
    {
        var builder = new JobBuilder("j");
        inputs(builder);
        var spec = builder.Output(result, resultSize).Task("t", steps).Build();
        return JobReference.Evaluate(spec)[result];
    }

    [Fact]
    public void Fill_repeats_the_pattern_little_endian_and_cuts_the_tail() =>
        Assert.Equal(new byte[] { 0x11, 0x22, 0x33, 0x44, 0x11, 0x22 },
            Run(_ => { }, 6, t => t.Fill("r", 0x44332211)));

    [Fact]
    public void Copy_copies() =>
        Assert.Equal(new byte[] { 9, 8, 7 }, Run(j => j.Input("x", new byte[] { 9, 8, 7 }), 3, t => t.Copy("r", "x")));

    [Fact]
    public void Add_adds_element_wise() =>
        Assert.Equal([11f, 22f, -0.5f],
            ToFloats(Run(j => j.Input("x", [1f, 2f, 0.5f]).Input("y", [10f, 20f, -1f]), 12, t => t.Add("r", "x", "y"))));

    [Fact]
    public void Scale_multiplies_by_alpha() =>
        Assert.Equal([-3f, 1.5f], ToFloats(Run(j => j.Input("x", [2f, -1f]), 8, t => t.Scale("r", "x", -1.5f))));

    [Fact]
    public void Axpy_is_alpha_a_plus_b() =>
        Assert.Equal([7f, -1f], ToFloats(Run(j => j.Input("x", [2f, -1f]).Input("y", [1f, 2f]), 8, t => t.Axpy("r", "x", "y", 3f))));

    [Fact]
    public void Axpy_rounds_the_product_before_the_add()
    {
        // alpha·a = 1 + 2^-22 + 2^-46 is rounded to 1 + 2^-22 before the add: without that rounding the sum with
        // b = -1 would be 2^-22 + 2^-46.
        var a = 1f + MathF.Pow(2, -23);

        var r = ToFloats(Run(j => j.Input("x", [a]).Input("y", [-1f]), 4, t => t.Axpy("r", "x", "y", a)));

        Assert.Equal(MathF.Pow(2, -22), r[0]);
    }

    [Fact]
    public void Matmul_multiplies_row_major_2x3_by_3x2()
    {
        // [1 2 3]   [ 7  8]   [ 58  64]
        // [4 5 6] · [ 9 10] = [139 154]
        //           [11 12]
        var r = Run(j => j.Input("a", [1f, 2f, 3f, 4f, 5f, 6f]).Input("b", [7f, 8f, 9f, 10f, 11f, 12f]), 16,
            t => t.MatMul("r", "a", "b", 2, 2, 3));

        Assert.Equal([58f, 64f, 139f, 154f], ToFloats(r));
    }

    [Fact]
    public void Reduce_sum_accumulates_in_double()
    {
        // In float, 2^24 + 1 + 1 + ... stays 2^24; in double the ones add up.
        var r = Run(j => j.Input("x", [16_777_216f, 1f, 1f, 1f, 1f]), 4, t => t.ReduceSum("r", "x"));

        Assert.Equal(16_777_220f, ToFloats(r)[0]);
    }

    [Fact]
    public void Checksum_is_crc32c_with_the_standard_check_value()
    {
        var r = Run(j => j.Input("x", Encoding.ASCII.GetBytes("123456789")), 4, t => t.Checksum("r", "x"));

        Assert.Equal(0xE3069283u, BinaryPrimitives.ReadUInt32LittleEndian(r));
    }

    [Fact]
    public void The_three_stage_job_computes_what_its_stages_say()
    {
        var values = JobReference.Evaluate(ThreeStage());

        var a = ToFloats(values["a"]);
        var b = ToFloats(values["b"]);
        var s = ToFloats(values["s"]);
        for (var i = 0; i < a.Length; i++)
        {
            var u = 2f * a[i] + b[i];
            var v = 0.5f * b[i];
            Assert.Equal(u + v, s[i]);
        }
        Assert.Equal((float)s.Sum(x => (double)x), ToFloats(values["total"])[0]);
        Assert.Equal(7, values.Count);
    }

    [Fact]
    public void Random_floats_are_deterministic_per_seed()
    {
        var buffer = new BufferSpec("x", 4096, BufferInit.RandomFloats(42), false);

        var first = BufferInit.Materialize(buffer);
        var again = BufferInit.Materialize(buffer with { Init = BufferInit.RandomFloats(42) });
        var other = BufferInit.Materialize(buffer with { Init = BufferInit.RandomFloats(43) });
        var scaled = BufferInit.Materialize(buffer with { Init = BufferInit.RandomFloats(42, 4f) });

        Assert.Equal(first, again);
        Assert.NotEqual(first, other);
        var values = ToFloats(first);
        Assert.All(values, v => Assert.InRange(v, -1f, 1f));
        Assert.True(values.Distinct().Count() > 1000, "values repeat");
        Assert.Equal(values.Select(v => v * 4f), ToFloats(scaled));
    }

    [Fact]
    public void Random_floats_follow_splitmix64()
    {
        // SplitMix64 from state 0: the first output is 0xE220A8397B1DCDAF (the published reference sequence).
        var value = ToFloats(BufferInit.Materialize(new BufferSpec("x", 4, BufferInit.RandomFloats(0), false)))[0];

        Assert.Equal((float)((0xE220A8397B1DCDAFUL >> 40) / (double)(1 << 24) * 2 - 1), value);
    }

    [Fact]
    public void A_ramp_counts_up_by_its_scale_and_zero_scale_means_one()
    {
        Assert.Equal([0f, 0.5f, 1f, 1.5f], ToFloats(BufferInit.Materialize(new BufferSpec("x", 16, BufferInit.Ramp(0.5f), false))));
        Assert.Equal([0f, 1f, 2f], ToFloats(BufferInit.Materialize(new BufferSpec("x", 12, BufferInit.Ramp(0f), false))));
    }

    [Theory]
    [InlineData(Kernels.MatMul, 100f, 100.005f, true)]
    [InlineData(Kernels.MatMul, 100f, 100.05f, false)]
    [InlineData(Kernels.ReduceSum, 0f, 1e-7f, true)]
    [InlineData(Kernels.Add, float.NaN, float.NaN, true)]
    [InlineData(Kernels.Scale, float.NaN, 1f, false)]
    [InlineData(Kernels.Copy, 100f, 100.005f, false)]
    [InlineData(Kernels.Checksum, 1f, 1f, true)]
    public void Matches_uses_a_tolerance_only_for_float_kernels(string kernel, float expected, float actual, bool matches) =>
        Assert.Equal(matches, JobReference.Matches(Floats(expected, 1f), Floats(actual, 1f), kernel));

    [Fact]
    public void Matches_refuses_a_different_length() =>
        Assert.False(JobReference.Matches(Floats(1f), Floats(1f, 1f), Kernels.MatMul));
}
