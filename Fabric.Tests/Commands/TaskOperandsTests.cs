using System.Buffers.Binary;
using Fabric.Core;
using Fabric.Core.Commands;

namespace Fabric.Tests.Commands;

public sealed class TaskOperandsTests
{
    private static ulong Field(byte[] program, int command, int field)
    {
        var at = CommandBufferFormat.HeaderSize;
        for (var i = 0; i < command; i++) at += (int)BinaryPrimitives.ReadUInt32LittleEndian(program.AsSpan(at + CommandBufferFormat.CommandSizeOffset));
        return BinaryPrimitives.ReadUInt64LittleEndian(program.AsSpan(at + field));
    }

    [Fact]
    public void Every_address_field_of_every_opcode_moves_to_its_operands_iova_plus_offset()
    {
        ulong A(int i, ulong offset = 0) => TaskOperands.Address(i, offset);
        var program = new CommandBufferBuilder()
            .Fill(A(0, 8), 8, 1).Copy(A(1), A(0), 8).Add(A(2), A(0), A(1, 4), 1).Scale(A(2), A(1), 1, 2f).Axpy(A(2), A(0), 1, 2f)
            .MatMul(A(2), A(0), A(1), 1, 1, 1).ReduceSum(A(2, 12), A(0), 2).Checksum(A(2, 16), A(1), 8).Build();
        ulong[] iovas = [0x10000, 0x20000, 0x30000];

        Assert.True(TaskOperands.TryRelocate(program, iovas, [64, 64, 64], out var moved, out var error), error?.Message);

        ulong[][] expected = [[0x10008], [0x20000, 0x10000], [0x30000, 0x10000, 0x20004], [0x30000, 0x20000], [0x30000, 0x10000],
            [0x30000, 0x10000, 0x20000], [0x3000c, 0x10000], [0x30010, 0x20000]];
        for (var c = 0; c < expected.Length; c++)
            for (var f = 0; f < expected[c].Length; f++)
                Assert.Equal(expected[c][f], Field(moved, c, 8 + 8 * f));
        Assert.Equal(program.Length, moved.Length);
        Assert.Equal(program[..16], moved[..16]); // the header is untouched
    }

    [Fact]
    public void An_absolute_address_an_unknown_operand_or_an_offset_past_the_end_is_refused_naming_the_command()
    {
        var absolute = new CommandBufferBuilder().Fill(TaskOperands.Address(0), 8, 1).Copy(0x5000, TaskOperands.Address(0), 8).Build();
        var unknown = new CommandBufferBuilder().Copy(TaskOperands.Address(3), TaskOperands.Address(0), 8).Build();
        var past = new CommandBufferBuilder().Fill(TaskOperands.Address(0, 64), 8, 1).Build();

        Assert.False(TaskOperands.TryRelocate(absolute, [0x1000], [64], out _, out var e1));
        Assert.False(TaskOperands.TryRelocate(unknown, [0x1000], [64], out _, out var e2));
        Assert.False(TaskOperands.TryRelocate(past, [0x1000], [64], out _, out var e3));

        Assert.Equal(ErrorCode.EINVAL, e1!.Code);
        Assert.Contains("command #1 (COPY)", e1.Message);
        Assert.Contains("0x5000 is not an operand address", e1.Message);
        Assert.Contains("names operand 3, but the task has 1", e2!.Message);
        Assert.Contains("offset 64 is past the end of operand 0 (64 bytes)", e3!.Message);
    }

    [Fact]
    public void A_program_too_malformed_to_walk_is_left_for_the_decoder()
    {
        var program = new CommandBufferBuilder().Fill(TaskOperands.Address(0), 8, 1).Build();
        var truncated = program[..^4];

        Assert.True(TaskOperands.TryRelocate(truncated, [0x1000], [64], out var same, out var error));
        Assert.Null(error);
        Assert.Equal(truncated, same);
    }
}
