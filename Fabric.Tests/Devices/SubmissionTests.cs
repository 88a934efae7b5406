using System.Buffers.Binary;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>Submissions through the actors: results, validation before anything runs, fences, queues, faults.</summary>
public sealed class SubmissionTests(ITestOutputHelper output) : DeviceStackTest(output,
    new DeviceProfile { MemoryBytes = 32L << 20, Queues = 2, FenceHistory = 16 },
    new DeviceProfile { MemoryBytes = 32L << 20, Queues = 2 },
    new DeviceProfile { MemoryBytes = 32L << 20, Queues = 1, Watchdog = TimeSpan.FromMilliseconds(150) })
{
    private const int Big = 1024; // a Big³ matmul runs for a noticeable time (a gate for ordering tests)

    /// <summary>
    /// Submits <paramref name="matmuls"/> long matmuls on <paramref name="queue"/> that signal the out-fence when done.
    /// Sixteen are tens of GFLOP: far past any watchdog of a few hundred ms on any machine (one may finish inside one).
    /// </summary>
    private static async Task<ContextRequests.Submitted> GateAsync(DeviceContext context, AddressSpaceId space, int queue = 0, int matmuls = 1)
    {
        var matrix = await context.AllocateAsync(Big * Big * 4);
        var result = await context.AllocateAsync(Big * Big * 4);
        var a = await context.MapAsync(space, matrix, Access.ReadWrite);
        var c = await context.MapAsync(space, result, Access.ReadWrite);
        var commands = new CommandBufferBuilder();
        for (var i = 0; i < matmuls; i++) commands.MatMul(c, a, a, Big, Big, Big);
        return await context.SubmitAsync(commands.SignalFence(0).Build(), queue, outFences: 1);
    }

    [Fact]
    public async Task Kernels_compute_what_the_host_computes()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var x = Enumerable.Range(0, 1000).Select(i => i * 0.25f).ToArray();
        var y = Enumerable.Range(0, 1000).Select(i => 1000 - i * 0.5f).ToArray();
        var (_, xIova) = await BufferWithAsync(context, space, Floats(x));
        var (yHandle, yIova) = await BufferWithAsync(context, space, Floats(y));
        var (outHandle, outIova) = await BufferWithAsync(context, space, new byte[8192]);

        await context.RunAsync(new CommandBufferBuilder()
            .Add(outIova, xIova, yIova, 1000)           // out = x + y
            .Axpy(yIova, xIova, 1000, 2f)               // y = 2x + y
            .ReduceSum(outIova + 4096, yIova, 1000)     // sum(y)
            .Copy(outIova + 4104, xIova + 4, 8)         // x[1], x[2]
            .Build(), Wait);

        var sum = AsFloats(await context.ReadAsync(outHandle, 0, 4000));
        var axpy = AsFloats(await context.ReadAsync(yHandle, 0, 4000));
        var tail = await context.ReadAsync(outHandle, 4096, 16);
        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal(x[i] + y[i], sum[i]);
            Assert.Equal(2f * x[i] + y[i], axpy[i]);
        }
        Assert.Equal(axpy.Sum(v => (double)v), BitConverter.ToSingle(tail, 0), 1.0);
        Assert.Equal([x[1], x[2]], AsFloats(tail[8..16]));
    }

    // ── malformed input: one error, nothing runs, nothing changes ─────────────────────────────

    public static TheoryData<string, ErrorCode> MalformedCases => new()
    {
        { "unknown opcode", ErrorCode.EINVAL },
        { "truncated", ErrorCode.EINVAL },
        { "misaligned", ErrorCode.EINVAL },
        { "length overflow", ErrorCode.EOVERFLOW },
        { "unmapped IOVA", ErrorCode.EFAULT },
        { "past the mapping", ErrorCode.EFAULT },
        { "read-only IOVA", ErrorCode.EPERM },
        { "fence slot", ErrorCode.EINVAL },
    };

    [Theory]
    [MemberData(nameof(MalformedCases))]
    public async Task Malformed_submission_gets_its_code_and_nothing_runs(string fault, ErrorCode code)
    {
        var (context, space) = await OpenAttachedAsync(1);
        var (data, iova) = await BufferWithAsync(context, space, new byte[4096]);
        var readOnly = await context.AllocateAsync(4096);
        var readOnlyIova = await context.MapAsync(space, readOnly, Access.Read);
        // A valid FILL first: if anything ran, the buffer would hold 0x5A bytes.
        var builder = new CommandBufferBuilder().Fill(iova, 4096, 0x5A5A5A5A);
        var buffer = fault switch
        {
            "unknown opcode" => Patch(builder.Copy(iova, iova + 8, 8).Build(), 48, b => BinaryPrimitives.WriteUInt16LittleEndian(b, 0x00FF)),
            "truncated" => Truncate(builder.Copy(iova, iova + 8, 8).Build(), 8),
            "misaligned" => builder.Add(iova + 2, iova, iova, 4).Build(),
            "length overflow" => builder.Fill(iova, ulong.MaxValue - 3, 1).Build(),
            "unmapped IOVA" => builder.Copy(iova, 0x7000_0000, 16).Build(),
            "past the mapping" => builder.Copy(iova, iova + 4000, 200).Build(),
            "read-only IOVA" => builder.Fill(readOnlyIova, 16, 1).Build(),
            "fence slot" => builder.SignalFence(0).Build(),
            _ => throw new ArgumentOutOfRangeException(nameof(fault)),
        };
        var before = await InfoAsync(1);

        var error = await FailsWithAsync(code, () => context.SubmitAsync(buffer));

        Assert.False(string.IsNullOrWhiteSpace(error.Message));
        Assert.Equal(new byte[4096], await context.ReadAsync(data, 0, 4096));
        var after = await InfoAsync(1);
        Assert.Equal((before.CompletedSubmissions, before.FailedSubmissions), (after.CompletedSubmissions, after.FailedSubmissions));
        // No fence was issued for the rejected buffer: the next one gets the next sequence number.
        var next = await context.SubmitAsync(new CommandBufferBuilder().Build());
        var first = await context.SubmitAsync(new CommandBufferBuilder().Build());
        Assert.Equal(next.Fence.Seq + 1, first.Fence.Seq);
        Assert.Equal(1, next.Fence.Seq);
    }

    private static byte[] Patch(byte[] buffer, int offset, Action<Span<byte>> patch)
    {
        patch(buffer.AsSpan(offset));
        return buffer;
    }

    private static byte[] Truncate(byte[] buffer, int bytes) => buffer[..^bytes];

    [Fact]
    public async Task Ten_thousand_random_and_mutated_command_buffers_never_crash_or_change_state()
    {
        var (context, space) = await OpenAttachedAsync(1);
        var contents = new byte[65536];
        new Random(7).NextBytes(contents);
        var data = await context.AllocateAsync(contents.Length);
        await context.WriteAsync(data, 0, contents);
        // Read-only: any command that writes memory is refused, so nothing that is accepted can change it.
        var iova = await context.MapAsync(space, data, Access.Read, iova: 0x10000);
        var random = new Random(20261124);
        var codes = new Dictionary<ErrorCode, int>();
        var accepted = 0;

        for (var i = 0; i < 10_000; i++)
        {
            var buffer = i % 4 == 0 ? RandomBytes(random) : Mutate(ValidBuffer(random, iova), random);
            try
            {
                var submitted = await context.SubmitAsync(buffer);
                accepted++;
                Assert.True((await context.WaitAsync(submitted.Fence, Wait)).IsSignalled);
            }
            catch (FabricException e)
            {
                codes[e.Code] = codes.GetValueOrDefault(e.Code) + 1;
            }
        }

        Output?.WriteLine($"accepted {accepted}; rejected: {string.Join(", ", codes.Select(kv => $"{kv.Key} {kv.Value}"))}");
        Assert.Equal(contents, await context.ReadAsync(data, 0, contents.Length));
        Assert.Subset(new HashSet<ErrorCode> { ErrorCode.EINVAL, ErrorCode.EOVERFLOW, ErrorCode.EFAULT, ErrorCode.EPERM }, codes.Keys.ToHashSet());
        Assert.True(codes.Values.Sum() > 9_000, $"only {codes.Values.Sum()} of 10 000 were rejected");
        var info = await InfoAsync(1);
        Assert.Equal(accepted, info.CompletedSubmissions + info.FailedSubmissions);
        var next = await context.SubmitAsync(new CommandBufferBuilder().Build());
        Assert.Equal(accepted + 1, next.Fence.Seq);
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(0, 200)];
        random.NextBytes(bytes);
        if (bytes.Length >= 4 && random.Next(2) == 0) BinaryPrimitives.WriteUInt32LittleEndian(bytes, 0x31424346);
        return bytes;
    }

    private static byte[] ValidBuffer(Random random, ulong iova)
    {
        var builder = new CommandBufferBuilder();
        ulong At() => iova + (ulong)random.Next(0, 16) * 4096 + (ulong)random.Next(0, 64) * 4;
        for (var n = random.Next(1, 5); n > 0; n--)
        {
            switch (random.Next(8))
            {
                case 0: builder.Fill(At(), (ulong)random.Next(1, 512), (uint)random.Next()); break;
                case 1: builder.Copy(At(), At(), (ulong)random.Next(1, 512)); break;
                case 2: builder.Add(At(), At(), At(), (ulong)random.Next(1, 64)); break;
                case 3: builder.Scale(At(), At(), (ulong)random.Next(1, 64), 2f); break;
                case 4: builder.Axpy(At(), At(), (ulong)random.Next(1, 64), 0.5f); break;
                case 5: builder.MatMul(At(), At(), At(), (uint)random.Next(1, 8), (uint)random.Next(1, 8), (uint)random.Next(1, 8)); break;
                case 6: builder.ReduceSum(At(), At(), (ulong)random.Next(1, 64)); break;
                default: builder.Checksum(At(), At(), (ulong)random.Next(1, 512)); break;
            }
        }
        return builder.Build();
    }

    private static byte[] Mutate(byte[] buffer, Random random)
    {
        switch (random.Next(4))
        {
            case 0: // flip a few bits
                for (var i = random.Next(1, 4); i > 0; i--) buffer[random.Next(buffer.Length)] ^= (byte)(1 << random.Next(8));
                return buffer;
            case 1: // truncate
                return buffer[..random.Next(buffer.Length)];
            case 2: // a random 32-bit field
                BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(random.Next(buffer.Length / 4) * 4), (uint)random.Next());
                return buffer;
            default: // leave it valid: it reads memory it may and writes memory it may not
                return buffer;
        }
    }

    // ── fences ────────────────────────────────────────────────────────────────────────────────

    [Fact]
    public async Task A_zero_timeout_on_a_pending_fence_answers_busy_and_a_later_wait_completes()
    {
        var (context, space) = await OpenAttachedAsync(1);
        var gate = await GateAsync(context, space);

        var now = await context.WaitAsync(gate.Fence, TimeSpan.Zero);
        var later = await context.WaitAsync(gate.Fence, TimeSpan.FromSeconds(30));

        Assert.Equal(FenceState.Busy, now.State);
        Assert.Equal(FenceState.Completed, later.State);
        Assert.Equal(FenceState.Completed, (await context.WaitAsync(gate.OutFences[0], TimeSpan.Zero)).State);
    }

    [Fact]
    public async Task Waiting_on_a_fence_not_yet_issued_fails_with_EINVAL()
    {
        await using var context = await Client.OpenAsync(Dev(0));

        var error = await FailsWithAsync(ErrorCode.EINVAL, () => context.WaitAsync(new FenceId(Dev(0), 5), Wait));

        Assert.Contains("never issued", error.Message);
    }

    [Fact]
    public async Task A_fence_too_old_to_track_reads_as_gone()
    {
        var (context, _) = await OpenAttachedAsync(0);
        var first = await context.RunAsync(new CommandBufferBuilder().Build(), Wait);
        for (var i = 0; i < 20; i++) await context.RunAsync(new CommandBufferBuilder().Build(), Wait);

        // Another client asks the device (the submitter's own library remembers its recent fences).
        await using var observer = FabricClient.Connect(Sys, Devices);
        var status = await observer.WaitAsync(first, Wait);

        Assert.Equal(FenceState.Gone, status.State);
        Assert.True(status.IsSignalled);
    }

    [Fact]
    public async Task A_submission_on_one_device_waits_for_a_fence_of_another()
    {
        var (producer, space0) = await OpenAttachedAsync(0);
        var (consumer, space1) = await OpenAttachedAsync(1);
        var (shared, sharedIova) = await BufferWithAsync(producer, space0, new byte[4096]);
        var gate = await GateAsync(producer, space0);
        var produce = await producer.SubmitAsync(new CommandBufferBuilder().Fill(sharedIova, 4096, 0x01010101).Build(), outFences: 1);
        var imported = await consumer.ImportAsync((await producer.ExportAsync(shared)).Token);
        var importedIova = await consumer.MapAsync(space1, imported.Handle, Access.Read);
        var (result, resultIova) = await BufferWithAsync(consumer, space1, new byte[4096]);

        var consume = await consumer.SubmitAsync(
            new CommandBufferBuilder().WaitFence(0).Copy(resultIova, importedIova, 4096).Build(), inFences: [produce.OutFences[0]]);
        var status = await consumer.WaitAsync(consume.Fence, TimeSpan.FromSeconds(30));

        Assert.Equal(FenceState.Completed, status.State);
        Assert.Equal(FenceState.Completed, (await producer.WaitAsync(gate.Fence, TimeSpan.Zero)).State);
        Assert.All(await consumer.ReadAsync(result, 0, 4096), b => Assert.Equal(1, b));
    }

    [Fact]
    public async Task Waiting_on_a_failed_fence_fails_the_submission_with_EIO_and_marks_only_its_context()
    {
        var (failing, space) = await OpenAttachedAsync(2);
        var (bystander, bystanderSpace) = await OpenAttachedAsync(2);
        var timedOut = await GateAsync(failing, space, matmuls: 16); // the 150 ms watchdog of dev2 stops it (and so it costs only that)

        var dependent = await failing.SubmitAsync(new CommandBufferBuilder().WaitFence(0).Build(), inFences: [timedOut.Fence]);
        var status = await failing.WaitAsync(dependent.Fence, TimeSpan.FromSeconds(30));
        var first = await failing.WaitAsync(timedOut.Fence, TimeSpan.Zero);

        Assert.Equal((FenceState.Failed, ErrorCode.ETIMEDOUT), (first.State, first.Error!.Code));
        Assert.Contains("watchdog", first.Error.Message);
        Assert.Equal((FenceState.Failed, ErrorCode.EIO), (status.State, status.Error!.Code));
        Assert.Equal(ErrorCode.ETIMEDOUT, (await failing.WaitAsync(timedOut.OutFences[0], TimeSpan.Zero)).Error!.Code);
        await AwaitAssertAsync(async () => Assert.Equal(2, (await failing.GetInfoAsync()).Faults), Wait);
        // The device and its other contexts carry on.
        var (ok, okIova) = await BufferWithAsync(bystander, bystanderSpace, new byte[4096]);
        await bystander.RunAsync(new CommandBufferBuilder().Fill(okIova, 4, 0x09090909).Build(), Wait);
        Assert.Equal([9, 9, 9, 9], await bystander.ReadAsync(ok, 0, 4));
        Assert.Equal(0, (await bystander.GetInfoAsync()).Faults);
    }

    [Fact]
    public async Task Out_fences_signal_when_signalled_and_otherwise_with_the_submissions_result()
    {
        var (context, _) = await OpenAttachedAsync(0);

        var submitted = await context.SubmitAsync(new CommandBufferBuilder().SignalFence(1).Build(), outFences: 2);
        await context.WaitAsync(submitted.Fence, Wait);

        Assert.Equal(2, submitted.OutFences.Length);
        Assert.All(submitted.OutFences, f => Assert.Equal(Dev(0), f.Device));
        foreach (var fence in submitted.OutFences) Assert.Equal(FenceState.Completed, (await context.WaitAsync(fence, TimeSpan.Zero)).State);
    }

    [Fact]
    public async Task A_multi_wait_returns_as_soon_as_one_fence_signals_with_the_set_that_did()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var gate = await GateAsync(context, space, queue: 0);
        var quick = await context.SubmitAsync(new CommandBufferBuilder().Build(), queue: 1);

        var signalled = await Client.WaitAnyAsync([gate.Fence, quick.Fence], TimeSpan.FromSeconds(30));

        Assert.Contains(signalled, s => s.Fence == quick.Fence && s.State == FenceState.Completed);
        Assert.DoesNotContain(signalled, s => s.Fence == gate.Fence);
    }

    [Fact]
    public async Task Submissions_on_one_queue_run_in_order()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var (x, xIova) = await BufferWithAsync(context, space, new byte[4096]);
        var (y, yIova) = await BufferWithAsync(context, space, new byte[4096]);

        await GateAsync(context, space);
        await context.SubmitAsync(new CommandBufferBuilder().Fill(xIova, 4096, 0x02020202).Build());
        var last = await context.SubmitAsync(new CommandBufferBuilder().Copy(yIova, xIova, 4096).Build());
        await context.WaitAsync(last.Fence, TimeSpan.FromSeconds(30));

        Assert.All(await context.ReadAsync(y, 0, 4096), b => Assert.Equal(2, b));
        Assert.All(await context.ReadAsync(x, 0, 4096), b => Assert.Equal(2, b));
    }

    [Fact]
    public async Task A_reset_aborts_in_flight_work_with_EIO_refuses_nothing_after_and_counts_itself()
    {
        var (context, space) = await OpenAttachedAsync(1);
        var gate = await GateAsync(context, space);
        var queued = await context.SubmitAsync(new CommandBufferBuilder().Build());

        var aborted = await Client.ResetDeviceAsync(Dev(1));

        Assert.Equal(2, aborted);
        foreach (var fence in new[] { gate.Fence, gate.OutFences[0], queued.Fence })
        {
            var status = await context.WaitAsync(fence, Wait);
            Assert.Equal((FenceState.Failed, ErrorCode.EIO), (status.State, status.Error!.Code));
        }
        var info = await InfoAsync(1);
        Assert.Equal((1L, false), (info.Resets, info.Resetting));
        await context.RunAsync(new CommandBufferBuilder().Build(), Wait);
        Assert.Equal(0, (await context.GetInfoAsync()).Faults);
    }

    [Fact]
    public async Task Submitting_without_an_attached_address_space_or_to_a_missing_queue_fails_with_EINVAL()
    {
        await using var bare = await Client.OpenAsync(Dev(0));
        var (context, _) = await OpenAttachedAsync(0);

        var unattached = await FailsWithAsync(ErrorCode.EINVAL, () => bare.SubmitAsync(new CommandBufferBuilder().Build()));
        await FailsWithAsync(ErrorCode.EINVAL, () => context.SubmitAsync(new CommandBufferBuilder().Build(), queue: 2));

        Assert.Contains("attach", unattached.Message);
    }
}
