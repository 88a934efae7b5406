using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Xunit.Abstractions;
using static Fabric.Core.Protocol.TaskRequests;

namespace Fabric.Tests.Devices;

/// <summary>Device-side tasks (RunTasks): one message runs many tasks; the device maps, makes, relocates, submits and waits.</summary>
public sealed class DeviceTaskTests(ITestOutputHelper output) : DeviceStackTest(output)
{
    /// <summary>dst (operand 1) = alpha · src (operand 0), over <paramref name="count"/> floats.</summary>
    private static byte[] ScaleProgram(ulong count, float alpha) =>
        new CommandBufferBuilder().Scale(TaskOperands.Address(1), TaskOperands.Address(0), count, alpha).Build();

    [Fact]
    public async Task A_batch_runs_each_task_on_the_device_and_names_the_buffers_it_made_which_later_tasks_read_in_place()
    {
        var (context, _) = await OpenAttachedAsync(0);
        var first = await context.RunTasksAsync(
        [
            new TaskRequest(1, ScaleProgram(4, 2f), [Operand.Of(Floats(1, 2, 3, 4)), Operand.Output(16)]),
            new TaskRequest(2, ScaleProgram(4, -1f), [Operand.Of(Floats(5, 6, 7, 8)), Operand.Output(16)]),
        ], Wait);

        Assert.Equal([1L, 2L], first.Select(o => o.Tag));
        Assert.All(first, o => Assert.Null(o.Error));
        Assert.All(first, o => Assert.Equal(2, o.Made.Length));
        Assert.Equal(new float[] { 2f, 4f, 6f, 8f }, AsFloats(await context.ReadAsync(first[0].Made[1].Handle, 0, 16)));
        Assert.Equal(new float[] { -5f, -6f, -7f, -8f }, AsFloats(await context.ReadAsync(first[1].Made[1].Handle, 0, 16)));

        // The first task's output, named as a local operand, is read where it already is mapped.
        var second = await context.RunTasksAsync([new TaskRequest(3, ScaleProgram(4, 10f), [Operand.Local(first[0].Made[1].Handle, 16), Operand.Output(16)])], Wait);
        Assert.Null(second[0].Error);
        Assert.Equal(new float[] { 20f, 40f, 60f, 80f }, AsFloats(await context.ReadAsync(second[0].Made[0].Handle, 0, 16)));
        Assert.Equal(5 * 4096, (await InfoAsync(0)).MemoryUsed);
    }

    [Fact]
    public async Task An_export_read_by_many_tasks_is_imported_once_and_let_go_when_forgotten()
    {
        var (exporter, space0) = await OpenAttachedAsync(0);
        var (importer, _) = await OpenAttachedAsync(1);
        var (buffer, _) = await BufferWithAsync(exporter, space0, Floats(1, 1, 2, 3));
        var token = (await exporter.ExportAsync(buffer, Access.Read)).Token;

        var tasks = Enumerable.Range(1, 8).Select(k => new TaskRequest(k, ScaleProgram(4, k), [Operand.Import(token, 16), Operand.Output(16)])).ToList();
        var outcomes = await importer.RunTasksAsync(tasks, Wait);

        Assert.All(outcomes, o => Assert.Null(o.Error));
        for (var k = 1; k <= 8; k++)
            Assert.Equal(new float[] { k, k, 2f * k, 3f * k }, AsFloats(await importer.ReadAsync(outcomes[k - 1].Made[0].Handle, 0, 16)));
        Assert.Equal(1, (await InfoAsync(1)).Imports);

        await importer.RunTasksAsync([], Wait, forget: [token.Export]);
        await AwaitAssertAsync(async () => Assert.Equal(0, (await InfoAsync(1)).Imports), Wait);
    }

    [Fact]
    public async Task A_forged_token_is_refused_even_after_the_right_one_was_imported()
    {
        var (exporter, space0) = await OpenAttachedAsync(0);
        var (importer, _) = await OpenAttachedAsync(1);
        var (buffer, _) = await BufferWithAsync(exporter, space0, Floats(1, 2, 3, 4));
        var token = (await exporter.ExportAsync(buffer, Access.Read)).Token;
        await importer.RunTasksAsync([new TaskRequest(1, ScaleProgram(4, 1), [Operand.Import(token, 16), Operand.Output(16)])], Wait);

        var forged = token with { Secret = new string('0', token.Secret.Length) };
        var outcome = (await importer.RunTasksAsync([new TaskRequest(2, ScaleProgram(4, 1), [Operand.Import(forged, 16), Operand.Output(16)])], Wait))[0];

        Assert.Equal(ErrorCode.EPERM, outcome.Error?.Code);
        Assert.Empty(outcome.Made);
    }

    [Fact]
    public async Task A_program_with_an_absolute_address_is_refused_naming_the_command_and_leaves_nothing_allocated()
    {
        var (context, _) = await OpenAttachedAsync(0);
        var absolute = new CommandBufferBuilder().Fill(TaskOperands.Address(0), 16, 7).Fill(0x10000, 16, 7).Build();

        var outcome = (await context.RunTasksAsync([new TaskRequest(9, absolute, [Operand.Output(16)])], Wait))[0];

        Assert.Equal(ErrorCode.EINVAL, outcome.Error?.Code);
        Assert.Contains("command #1 (FILL)", outcome.Error!.Message);
        Assert.Contains("task 9", outcome.Error.Message);
        await AwaitMemoryUsedAsync(0, 0);
    }

    [Fact]
    public async Task A_failing_task_fails_alone_in_its_batch_and_frees_what_it_made()
    {
        var (context, _) = await OpenAttachedAsync(0);
        var outcomes = await context.RunTasksAsync(
        [
            new TaskRequest(1, ScaleProgram(4, 3f), [Operand.Of(Floats(1, 2, 3, 4)), Operand.Output(16)]),
            new TaskRequest(2, ScaleProgram(4, 3f), [Operand.Of(Floats(1, 2, 3, 4)), Operand.Output(64L << 20)]), // more than the device has
            new TaskRequest(3, ScaleProgram(4, 3f), [Operand.Of(Floats(1, 2, 3, 4))]), // names operand 1, which it does not have
        ], Wait);

        Assert.Null(outcomes[0].Error);
        Assert.Equal(ErrorCode.ENOMEM, outcomes[1].Error?.Code);
        Assert.Equal(ErrorCode.EINVAL, outcomes[2].Error?.Code);
        Assert.Contains("names operand 1, but the task has 1", outcomes[2].Error!.Message);
        Assert.Equal(new float[] { 3f, 6f, 9f, 12f }, AsFloats(await context.ReadAsync(outcomes[0].Made[1].Handle, 0, 16)));
        await AwaitMemoryUsedAsync(0, 2 * 4096);
    }

    [Fact]
    public async Task Released_buffers_are_unmapped_and_freed()
    {
        var (context, _) = await OpenAttachedAsync(0);
        var made = (await context.RunTasksAsync([new TaskRequest(1, ScaleProgram(4, 1f), [Operand.Of(Floats(1, 2, 3, 4)), Operand.Output(16)])], Wait))[0].Made;
        Assert.Equal(2 * 4096, (await InfoAsync(0)).MemoryUsed);

        await context.RunTasksAsync([], Wait, release: made.Select(m => m.Handle));

        await AwaitMemoryUsedAsync(0, 0);
        await FailsWithAsync(ErrorCode.EINVAL, () => context.ReadAsync(made[1].Handle, 0, 4));
    }

    [Fact]
    public async Task Without_an_attached_address_space_every_task_is_refused()
    {
        await using var context = await Client.OpenAsync(Dev(0));
        var outcomes = await context.RunTasksAsync([new TaskRequest(1, ScaleProgram(4, 1f), [Operand.Of(Floats(1, 2, 3, 4)), Operand.Output(16)])], Wait);

        Assert.Equal(ErrorCode.EINVAL, outcomes[0].Error?.Code);
        Assert.Contains("no address space attached", outcomes[0].Error!.Message);
        Assert.Equal(0, (await InfoAsync(0)).MemoryUsed);
    }

    [Fact]
    public async Task Many_buffers_are_read_back_in_order_and_one_that_cannot_be_read_fails_the_read_naming_it()
    {
        var (context, space) = await OpenAttachedAsync(0);
        var buffers = new List<(BufferHandle Handle, int Length)>();
        for (var k = 0; k < 40; k++) buffers.Add(((await BufferWithAsync(context, space, Floats(k, k + 1, k + 2, k + 3))).Handle, 16));
        buffers.Add(((await BufferWithAsync(context, space, new byte[70_000])).Handle, 70_000)); // more than one message's worth: alone

        var data = await context.ReadBuffersAsync(buffers);

        Assert.Equal(41, data.Length);
        for (var k = 0; k < 40; k++) Assert.Equal(new float[] { k, k + 1, k + 2, k + 3 }, AsFloats(data[k]));
        Assert.Equal(70_000, data[40].Length);
        var unknown = new BufferHandle(buffers[0].Handle.Value + 1000);
        var error = await FailsWithAsync(ErrorCode.EINVAL, () => context.ReadBuffersAsync([buffers[0], (unknown, 4)]));
        Assert.Contains(unknown.ToString(), error.Message);
    }
}
