using System.Buffers.Binary;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Devices.Internal.Commands;
using static Fabric.Tests.Commands.CommandBuffers;

namespace Fabric.Tests.Commands;

public sealed class CommandDecoderTests
{
    /// <summary>One command of every opcode; offsets are 16, 48, 80, 120, 160, 200, 248, 280, 312, 328; total 344.</summary>
    private static CommandBufferBuilder EveryOpcode() => new CommandBufferBuilder()
        .Fill(0x1001, 77, 0xA1B2C3D4)
        .Copy(0x2003, 0x3005, 1234)
        .Add(0x4000, 0x5004, 0x6008, 300)
        .Scale(0x7000, 0x8000, 12, -1.5f)
        .Axpy(0x9000, 0xA000, 99, 3.25f)
        .MatMul(0xB000, 0xC000, 0xD000, 3, 4, 5)
        .ReduceSum(0xE000, 0xF000, 64)
        .Checksum(0x10004, 0x11001, 4097)
        .SignalFence(1)
        .WaitFence(0, 250);

    // ---- format and round trip -----------------------------------------------------------------------------------

    [Fact]
    public void Builder_writes_the_documented_header_and_command_layout()
    {
        var bytes = new CommandBufferBuilder().Fill(0x1122334455667788, 0x99, 0xCAFEF00D).Build();

        byte[] expected =
        [
            (byte)'F', (byte)'C', (byte)'B', (byte)'1', 1, 0, 0, 0, 1, 0, 0, 0, 48, 0, 0, 0,
            1, 0, 0, 0, 32, 0, 0, 0,
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
            0x99, 0, 0, 0, 0, 0, 0, 0,
            0x0D, 0xF0, 0xFE, 0xCA, 0, 0, 0, 0,
        ];
        Assert.Equal(expected, bytes);
        Assert.Equal(CommandBufferFormat.Magic, BinaryPrimitives.ReadUInt32LittleEndian(bytes));
    }

    [Fact]
    public void Every_opcode_round_trips_through_builder_and_decoder()
    {
        var builder = EveryOpcode();
        var bytes = builder.Build();
        Assert.Equal(10, builder.Count);
        Assert.Equal(344, bytes.Length);

        var program = Accept(bytes);

        DecodedCommand[] expected =
        [
            new FillCommand(0, 16, 0x1001, 77, 0xA1B2C3D4),
            new CopyCommand(1, 48, 0x2003, 0x3005, 1234),
            new AddF32Command(2, 80, 0x4000, 0x5004, 0x6008, 300),
            new ScaleF32Command(3, 120, 0x7000, 0x8000, 12, -1.5f),
            new AxpyF32Command(4, 160, 0x9000, 0xA000, 99, 3.25f),
            new MatMulF32Command(5, 200, 0xB000, 0xC000, 0xD000, 3, 4, 5),
            new ReduceSumF32Command(6, 248, 0xE000, 0xF000, 64),
            new ChecksumCommand(7, 280, 0x10004, 0x11001, 4097),
            new SignalFenceCommand(8, 312, 1),
            new WaitFenceCommand(9, 328, 0, 250),
        ];
        Assert.Equal(expected, program.Commands);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (Opcode)i), program.Commands.Select(c => c.Opcode));
        Assert.Equal(bytes, Encode(program));
    }

    [Fact]
    public void Decoded_commands_list_every_memory_operand_with_its_access()
    {
        var commands = Accept(EveryOpcode().Build()).Commands;

        Assert.Equal([new MemoryOperand("dst", 0x1001, 77, Access.Write)], commands[0].Operands);
        Assert.Equal([new MemoryOperand("dst", 0x2003, 1234, Access.Write), new MemoryOperand("src", 0x3005, 1234, Access.Read)],
            commands[1].Operands);
        Assert.Equal(
        [
            new MemoryOperand("dst", 0x4000, 1200, Access.Write), new MemoryOperand("a", 0x5004, 1200, Access.Read),
            new MemoryOperand("b", 0x6008, 1200, Access.Read),
        ], commands[2].Operands);
        Assert.Equal([new MemoryOperand("dst", 0x7000, 48, Access.Write), new MemoryOperand("src", 0x8000, 48, Access.Read)],
            commands[3].Operands);
        Assert.Equal([new MemoryOperand("y", 0x9000, 396, Access.ReadWrite), new MemoryOperand("x", 0xA000, 396, Access.Read)],
            commands[4].Operands);
        Assert.Equal(
        [
            new MemoryOperand("c", 0xB000, 48, Access.Write), new MemoryOperand("a", 0xC000, 60, Access.Read),
            new MemoryOperand("b", 0xD000, 80, Access.Read),
        ], commands[5].Operands);
        Assert.Equal([new MemoryOperand("dst", 0xE000, 4, Access.Write), new MemoryOperand("src", 0xF000, 256, Access.Read)],
            commands[6].Operands);
        Assert.Equal([new MemoryOperand("dst", 0x10004, 4, Access.Write), new MemoryOperand("src", 0x11001, 4097, Access.Read)],
            commands[7].Operands);
        Assert.Empty(commands[8].Operands);
        Assert.Empty(commands[9].Operands);
        Assert.Equal("command #5 (MATMUL_F32) at byte 200", commands[5].Location);
    }

    [Fact]
    public void Empty_program_is_valid()
    {
        var bytes = new CommandBufferBuilder().Build();
        Assert.Equal(CommandBufferFormat.HeaderSize, bytes.Length);
        Assert.Empty(Accept(bytes).Commands);
    }

    [Fact]
    public void A_buffer_of_exactly_1_MiB_is_accepted_and_the_builder_refuses_to_grow_past_it()
    {
        var builder = new CommandBufferBuilder();
        for (var i = 0; i < 65_535; i++)
            builder.SignalFence((uint)(i % OutFences));
        Assert.Equal(CommandBufferFormat.MaxBufferLength, builder.Length);

        var error = Assert.Throws<InvalidOperationException>(() => builder.SignalFence(0));
        Assert.Contains("1048592", error.Message);
        Assert.Equal(65_535, Accept(builder.Build()).Commands.Length);
    }

    // ---- truncation ----------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    public void Truncated_header_is_rejected_with_EINVAL(int length)
    {
        var bytes = new CommandBufferBuilder().Build().AsSpan(0, length).ToArray();
        Reject(bytes, ErrorCode.EINVAL, "truncated", $"{length} bytes");
    }

    [Fact]
    public void Buffer_shorter_than_its_declared_total_length_is_rejected_as_truncated()
    {
        var bytes = EveryOpcode().Build();
        Reject(bytes.AsSpan(0, 300).ToArray(), ErrorCode.EINVAL, "truncated", "declares 344 bytes", "only 300");
    }

    [Fact]
    public void Truncated_command_is_rejected_with_EINVAL_naming_the_command()
    {
        var bytes = new CommandBufferBuilder().Fill(0x1000, 8, 1).Add(0x2000, 0x3000, 0x4000, 4).Build();
        Reject(bytes.CutTo(80), ErrorCode.EINVAL, "command #1 (ADD_F32) at byte 48 is truncated", "32 bytes left of its 40");
        Reject(bytes.CutTo(52), ErrorCode.EINVAL, "command #1 at byte 48 is truncated", "a command header needs 8");
    }

    // ---- header fields -------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(0, 0x31424347u, "bad magic 0x31424347")]
    [InlineData(0, 0x46434231u, "bad magic 0x46434231")]
    public void Bad_magic_is_rejected_with_EINVAL(int offset, uint value, string fragment) =>
        Reject(EveryOpcode().Build().With32(offset, value), ErrorCode.EINVAL, fragment);

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(0xFFFF)]
    public void Unsupported_version_is_rejected_with_EINVAL(ushort version) =>
        Reject(EveryOpcode().Build().With16(CommandBufferFormat.VersionOffset, version), ErrorCode.EINVAL, $"unsupported version {version}");

    [Fact]
    public void Nonzero_header_flags_are_rejected_with_EINVAL() =>
        Reject(EveryOpcode().Build().With16(CommandBufferFormat.FlagsOffset, 0x8000), ErrorCode.EINVAL, "flags 0x8000");

    [Fact]
    public void Total_length_field_smaller_than_the_buffer_is_rejected_with_EINVAL()
    {
        var bytes = EveryOpcode().Build();
        var longer = bytes.Concat(new byte[16]).ToArray();
        Reject(longer, ErrorCode.EINVAL, "total length of 344 bytes", "buffer is 360 bytes");
        Reject(bytes.With32(CommandBufferFormat.TotalLengthOffset, 336), ErrorCode.EINVAL, "total length of 336");
    }

    [Fact]
    public void Count_field_larger_than_the_commands_present_is_rejected_with_EINVAL() =>
        Reject(EveryOpcode().Build().With32(CommandBufferFormat.CountOffset, 11), ErrorCode.EINVAL, "declares 11 commands", "holds 10");

    [Fact]
    public void Count_field_smaller_than_the_commands_present_is_rejected_with_EINVAL() =>
        Reject(EveryOpcode().Build().With32(CommandBufferFormat.CountOffset, 9), ErrorCode.EINVAL,
            "more commands than the 9", "command #9 starts at byte 328");

    [Fact]
    public void Buffer_longer_than_1_MiB_is_rejected_with_EINVAL()
    {
        var bytes = new CommandBufferBuilder().Build();
        var huge = new byte[CommandBufferFormat.MaxBufferLength + 16];
        bytes.CopyTo(huge, 0);
        huge = huge.With32(CommandBufferFormat.TotalLengthOffset, (uint)huge.Length);
        Reject(huge, ErrorCode.EINVAL, "1048592 bytes", "limit of 1048576");
    }

    [Fact]
    public void More_than_65536_commands_are_rejected_with_EINVAL() =>
        Reject(new CommandBufferBuilder().SignalFence(0).Build().With32(CommandBufferFormat.CountOffset, 65_537),
            ErrorCode.EINVAL, "65537 commands", "limit of 65536");

    // ---- command headers -----------------------------------------------------------------------------------------

    [Theory]
    [InlineData((ushort)0)]
    [InlineData((ushort)11)]
    [InlineData((ushort)0x00ff)]
    [InlineData((ushort)0xffff)]
    public void Unknown_opcode_is_rejected_with_EINVAL(ushort opcode)
    {
        var bytes = new CommandBufferBuilder().Fill(0x1000, 8, 1).Copy(0x2000, 0x3000, 8).Build();
        Reject(bytes.With16(48, opcode), ErrorCode.EINVAL, "command #1 at byte 48", $"unknown opcode 0x{opcode:x4}");
    }

    [Fact]
    public void Nonzero_command_flags_are_rejected_with_EINVAL() =>
        Reject(EveryOpcode().Build().With16(80 + 2, 1), ErrorCode.EINVAL, "command #2 (ADD_F32) at byte 80", "flags 0x0001");

    [Theory]
    [InlineData(16, 40u, "size 40 does not match the fixed size 32 of FILL")]
    [InlineData(200, 40u, "size 40 does not match the fixed size 48 of MATMUL_F32")]
    [InlineData(312, 0u, "size 0 does not match the fixed size 16")]
    [InlineData(16, 33u, "size 33 is not a multiple of 8")]
    [InlineData(328, 0xFFFFFFFFu, "size 4294967295 is not a multiple of 8")]
    public void Command_size_other_than_the_fixed_size_is_rejected_with_EINVAL(int offset, uint size, string fragment) =>
        Reject(EveryOpcode().Build().With32(offset + 4, size), ErrorCode.EINVAL, $"at byte {offset}", fragment);

    [Theory]
    [InlineData(16, 28, "FILL")]
    [InlineData(120, 36, "SCALE_F32")]
    [InlineData(160, 36, "AXPY_F32")]
    [InlineData(200, 44, "MATMUL_F32")]
    [InlineData(312, 12, "SIGNAL_FENCE")]
    public void Nonzero_reserved_field_is_rejected_with_EINVAL(int offset, int field, string name) =>
        Reject(EveryOpcode().Build().With32(offset + field, 0x10), ErrorCode.EINVAL,
            $"({name}) at byte {offset}", $"reserved field at byte +{field} is 0x00000010");

    // ---- operands ------------------------------------------------------------------------------------------------

    public static TheoryData<byte[], string> MisalignedOperands => new()
    {
        { new CommandBufferBuilder().Fill(0x1000, 4, 0).Add(0x1000, 0x2000, 0x1002, 4).Build(), "command #1 (ADD_F32) at byte 48: misaligned operand b: IOVA 0x1002 is not 4-byte aligned" },
        { new CommandBufferBuilder().Add(0x1001, 0x2000, 0x3000, 4).Build(), "command #0 (ADD_F32) at byte 16: misaligned operand dst" },
        { new CommandBufferBuilder().Scale(0x1000, 0x2003, 4, 1).Build(), "(SCALE_F32) at byte 16: misaligned operand src" },
        { new CommandBufferBuilder().Axpy(0x1002, 0x2000, 4, 1).Build(), "(AXPY_F32) at byte 16: misaligned operand y" },
        { new CommandBufferBuilder().Axpy(0x1000, 0x2001, 4, 1).Build(), "(AXPY_F32) at byte 16: misaligned operand x" },
        { new CommandBufferBuilder().MatMul(0x1000, 0x2000, 0x3006, 2, 2, 2).Build(), "(MATMUL_F32) at byte 16: misaligned operand b" },
        { new CommandBufferBuilder().MatMul(0x1003, 0x2000, 0x3000, 2, 2, 2).Build(), "(MATMUL_F32) at byte 16: misaligned operand c" },
        { new CommandBufferBuilder().ReduceSum(0x1001, 0x2000, 4).Build(), "(REDUCE_SUM_F32) at byte 16: misaligned operand dst" },
        { new CommandBufferBuilder().ReduceSum(0x1000, 0x2002, 4).Build(), "(REDUCE_SUM_F32) at byte 16: misaligned operand src" },
        { new CommandBufferBuilder().Checksum(0x1002, 0x2001, 4).Build(), "(CHECKSUM) at byte 16: misaligned operand dst" },
    };

    [Theory]
    [MemberData(nameof(MisalignedOperands))]
    public void Misaligned_float_operand_is_rejected_with_EINVAL(byte[] bytes, string fragment) =>
        Reject(bytes, ErrorCode.EINVAL, fragment);

    [Fact]
    public void Byte_operands_of_fill_copy_and_checksum_may_be_unaligned()
    {
        var program = Accept(new CommandBufferBuilder().Fill(0x1001, 3, 7).Copy(0x2003, 0x3005, 5).Checksum(0x4000, 0x5007, 9).Build());
        Assert.Equal(3, program.Commands.Length);
    }

    public static TheoryData<byte[], string> ZeroSizes => new()
    {
        { new CommandBufferBuilder().Fill(0x1000, 0, 1).Build(), "command #0 (FILL) at byte 16: length is 0" },
        { new CommandBufferBuilder().SignalFence(0).Copy(0x1000, 0x2000, 0).Build(), "command #1 (COPY) at byte 32: length is 0" },
        { new CommandBufferBuilder().Add(0x1000, 0x2000, 0x3000, 0).Build(), "(ADD_F32) at byte 16: count is 0" },
        { new CommandBufferBuilder().Scale(0x1000, 0x2000, 0, 1).Build(), "(SCALE_F32) at byte 16: count is 0" },
        { new CommandBufferBuilder().Axpy(0x1000, 0x2000, 0, 1).Build(), "(AXPY_F32) at byte 16: count is 0" },
        { new CommandBufferBuilder().MatMul(0x1000, 0x2000, 0x3000, 0, 2, 2).Build(), "(MATMUL_F32) at byte 16: m is 0" },
        { new CommandBufferBuilder().MatMul(0x1000, 0x2000, 0x3000, 2, 0, 2).Build(), "(MATMUL_F32) at byte 16: n is 0" },
        { new CommandBufferBuilder().MatMul(0x1000, 0x2000, 0x3000, 2, 2, 0).Build(), "(MATMUL_F32) at byte 16: k is 0" },
        { new CommandBufferBuilder().ReduceSum(0x1000, 0x2000, 0).Build(), "(REDUCE_SUM_F32) at byte 16: count is 0" },
        { new CommandBufferBuilder().Checksum(0x1000, 0x2000, 0).Build(), "(CHECKSUM) at byte 16: length is 0" },
    };

    [Theory]
    [MemberData(nameof(ZeroSizes))]
    public void Zero_length_count_or_dimension_is_rejected_with_EINVAL(byte[] bytes, string fragment) =>
        Reject(bytes, ErrorCode.EINVAL, fragment);

    public static TheoryData<byte[], string> Overflows => new()
    {
        { new CommandBufferBuilder().Add(0x1000, 0x2000, 0x3000, 1UL << 62).Build(), "command #0 (ADD_F32) at byte 16: operand dst of 4611686018427387904 float32 elements overflows 64 bits" },
        { new CommandBufferBuilder().Scale(0x1000, 0x2000, ulong.MaxValue, 1).Build(), "(SCALE_F32) at byte 16: operand dst of 18446744073709551615 float32 elements overflows" },
        { new CommandBufferBuilder().MatMul(0x1000, 0x2000, 0x3000, uint.MaxValue, uint.MaxValue, 1).Build(), "(MATMUL_F32) at byte 16: operand c of 4294967295 x 4294967295 float32 elements overflows 64 bits" },
        { new CommandBufferBuilder().MatMul(0x1000, 0x2000, 0x3000, 1 << 20, 1, 1 << 19).Build(), "(MATMUL_F32) at byte 16: operand a is 2199023255552 bytes, over the limit of 2^40" },
        { new CommandBufferBuilder().Fill(0x1000, (1UL << 40) + 1, 1).Build(), "(FILL) at byte 16: operand dst is 1099511627777 bytes, over the limit" },
        { new CommandBufferBuilder().Add(0x1000, 0x2000, 0x3000, (1UL << 38) + 1).Build(), "(ADD_F32) at byte 16: operand dst is 1099511627780 bytes" },
        { new CommandBufferBuilder().Checksum(0x1000, 0x2000, ulong.MaxValue).Build(), "(CHECKSUM) at byte 16: operand src is 18446744073709551615 bytes" },
        { new CommandBufferBuilder().Copy(0x1000, 0xFFFF_FFFF_FFFF_F000, 0x2000).Build(), "(COPY) at byte 16: operand src at IOVA 0xfffffffffffff000 with length 8192 wraps" },
        { new CommandBufferBuilder().Fill(0xFFFF_FFFF_FFFF_FFF0, 16, 1).Build(), "(FILL) at byte 16: operand dst at IOVA 0xfffffffffffffff0 with length 16 wraps" },
        { new CommandBufferBuilder().ReduceSum(0xFFFF_FFFF_FFFF_FFFC, 0x1000, 4).Build(), "(REDUCE_SUM_F32) at byte 16: operand dst at IOVA 0xfffffffffffffffc with length 4 wraps" },
    };

    [Theory]
    [MemberData(nameof(Overflows))]
    public void Operand_size_overflow_or_wrap_is_rejected_with_EOVERFLOW(byte[] bytes, string fragment) =>
        Reject(bytes, ErrorCode.EOVERFLOW, fragment);

    [Fact]
    public void Operands_that_end_just_below_2_to_the_64_and_at_the_size_limit_are_accepted()
    {
        var program = Accept(new CommandBufferBuilder()
            .Fill(0xFFFF_FFFF_FFFF_FFEF, 16, 1)
            .Fill(0x1000, CommandBufferFormat.MaxOperandLength, 1)
            .Add(0x1000, 0x2000, 0x3000, CommandBufferFormat.MaxOperandLength / 4)
            .Build());
        Assert.Equal(0xFFFF_FFFF_FFFF_FFFFul, program.Commands[0].Operands.Single().End);
        Assert.Equal(CommandBufferFormat.MaxOperandLength, program.Commands[2].Operands.First().Length);
    }

    // ---- fences --------------------------------------------------------------------------------------------------

    [Fact]
    public void Wait_on_an_in_fence_slot_the_submission_lacks_is_rejected_with_EINVAL() =>
        Reject(new CommandBufferBuilder().WaitFence(1).WaitFence(InFences, 10).Build(), ErrorCode.EINVAL,
            "command #1 (WAIT_FENCE) at byte 32: in-fence slot 2 is out of range: the submission has 2 in-fences");

    [Fact]
    public void Signal_of_an_out_fence_slot_the_submission_lacks_is_rejected_with_EINVAL() =>
        Reject(new CommandBufferBuilder().SignalFence(uint.MaxValue).Build(), ErrorCode.EINVAL,
            "command #0 (SIGNAL_FENCE) at byte 16: out-fence slot 4294967295 is out of range");

    [Fact]
    public void Fence_commands_are_rejected_when_the_submission_has_no_fences()
    {
        Assert.False(CommandDecoder.TryDecode(new CommandBufferBuilder().SignalFence(0).Build(), 5, 0, out _, out var signal));
        Assert.Equal(ErrorCode.EINVAL, signal.Code);
        Assert.Contains("has 0 out-fences", signal.Message);
        Assert.False(CommandDecoder.TryDecode(new CommandBufferBuilder().WaitFence(0).Build(), -1, 5, out _, out var wait));
        Assert.Equal(ErrorCode.EINVAL, wait.Code);
        Assert.Contains("has 0 in-fences", wait.Message);
    }

    [Fact]
    public void The_first_invalid_command_is_the_one_reported()
    {
        var bytes = new CommandBufferBuilder().Fill(0x1000, 4, 1).Add(0x1000, 0x2000, 0x3001, 4).Fill(0x1000, 0, 1).Build();
        var error = Reject(bytes, ErrorCode.EINVAL, "command #1 (ADD_F32) at byte 48");
        Assert.DoesNotContain("#2", error.Message);
    }
}
