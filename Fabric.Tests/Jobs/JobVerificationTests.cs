using System.Buffers.Binary;
using System.Diagnostics;
using Fabric.Core.Jobs;
using Fabric.Devices.Internal.Commands;
using Fabric.Tests.Commands;
using Xunit.Abstractions;

namespace Fabric.Tests.Jobs;

/// <summary>The host check of a job's results (what <c>fabric submit --wait</c> runs): fast on a large job, and exact.</summary>
public sealed class JobVerificationTests(ITestOutputHelper output)
{
    private const ulong Base = 0x10_0000;
    private const uint N = 1024;

    /// <summary>A 1024² matmul, scaled, summed and checksummed: the checksum needs every element of the product bit for bit.</summary>
    private static JobSpec LargeJob() => new JobBuilder("large")
        .RandomInput("a", (long)N * N, seed: 21).RandomInput("b", (long)N * N, seed: 22, scale: 0.5f)
        .Buffer("p", (long)N * N * 4)
        .Output("q", (long)N * N * 4).Output("total", 4).Output("crc", 4)
        .Task("mul", t => t.MatMul("p", "a", "b", N, N, N))
        .Task("finish", t => t.Scale("q", "p", 3f).ReduceSum("total", "q").Checksum("crc", "p"))
        .Build();

    /// <summary>Runs every task of <paramref name="spec"/> through the device's decoder and kernels; returns each output's bytes.</summary>
    private static Dictionary<string, byte[]> RunOnDeviceKernels(JobSpec spec)
    {
        var iovas = new Dictionary<string, ulong>();
        var next = Base;
        foreach (var buffer in spec.Buffers)
        {
            iovas[buffer.Name] = next;
            next += ((ulong)buffer.Size + 63) & ~63UL;
        }
        var view = new PinnedMemoryView(Base, checked((int)(next - Base)));
        foreach (var buffer in spec.Buffers.Where(b => b.IsInput))
            BufferInit.Materialize(buffer).CopyTo(view.Bytes, view.OffsetOf(iovas[buffer.Name]));
        foreach (var task in JobPlan.Of(spec).Tasks)
        {
            var commands = TaskCompiler.Compile(task.Task, name => iovas[name], name => spec.Buffer(name)!.Size);
            Assert.True(CommandDecoder.TryDecode(commands, 0, 0, out var program, out var error), error?.ToString());
            foreach (var command in program.Commands) KernelExecutor.Execute(command, view, CancellationToken.None);
        }
        return spec.Buffers.Where(b => b.Output)
            .ToDictionary(b => b.Name, b => view.Bytes.AsSpan(view.OffsetOf(iovas[b.Name]), (int)b.Size).ToArray());
    }

    [Fact]
    public void A_1024_square_matmul_job_is_checked_on_the_host_in_seconds_and_one_wrong_element_is_caught()
    {
        var spec = LargeJob();
        var plan = JobPlan.Of(spec);
        var device = RunOnDeviceKernels(spec);

        var clock = Stopwatch.StartNew();
        var expected = JobReference.Evaluate(spec);
        var verdicts = device.ToDictionary(o => o.Key, o => JobReference.Matches(expected[o.Key], o.Value, plan.ProducerKernel(o.Key)));
        var took = clock.Elapsed;

        output.WriteLine($"host check of a {N}² matmul job: {took.TotalSeconds:0.00} s");
        Assert.All(verdicts, v => Assert.True(v.Value, $"output {v.Key} differs from the host reference"));
        // The old scalar reference took over a minute here; the vectorized one well under a second on two cores.
        Assert.True(took < TimeSpan.FromSeconds(15), $"the host check took {took.TotalSeconds:0.0} s");

        // One element off by a little more than the tolerance, in the middle of q.
        var wrong = device["q"].ToArray();
        var at = 4 * (N * N / 2 + 123);
        BinaryPrimitives.WriteSingleLittleEndian(wrong.AsSpan((int)at), BinaryPrimitives.ReadSingleLittleEndian(wrong.AsSpan((int)at)) * 1.001f + 1e-3f);
        var difference = JobReference.Difference(expected["q"], wrong, plan.ProducerKernel("q"));
        Assert.NotNull(difference);
        Assert.StartsWith($"element {N * N / 2 + 123} is ", difference);
        // The checksum of p is compared byte for byte.
        var crc = device["crc"].ToArray();
        crc[0] ^= 1;
        Assert.False(JobReference.Matches(expected["crc"], crc, plan.ProducerKernel("crc")));
    }

    [Theory]
    [InlineData(1u, 1u, 1u)]
    [InlineData(5u, 16u, 3u)]
    [InlineData(37u, 53u, 29u)]
    [InlineData(66u, 70u, 130u)]
    public void The_host_matmul_equals_the_device_bit_for_bit_whatever_the_shape(uint m, uint n, uint k)
    {
        var spec = new JobBuilder("shape")
            .RandomInput("a", (long)m * k, seed: m).RandomInput("b", (long)k * n, seed: n, scale: 3f)
            .Output("c", (long)m * n * 4).Output("crc", 4)
            .Task("mul", t => t.MatMul("c", "a", "b", m, n, k).Checksum("crc", "c"))
            .Build();

        var device = RunOnDeviceKernels(spec);
        var host = JobReference.Evaluate(spec);

        Assert.Equal(device["c"], host["c"]);
        Assert.Equal(device["crc"], host["crc"]);
    }
}
