using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Commands;

namespace Fabric.Devices.Internal.Commands;

/// <summary>
/// One memory range a decoded command touches, in device IOVA space. The decoder guarantees <see cref="Length"/> is
/// between 1 and <see cref="CommandBufferFormat.MaxOperandLength"/> and that <see cref="End"/> does not wrap.
/// </summary>
/// <param name="Name">The operand's field name in the format ("dst", "src", "a", "b", "c", "x", "y").</param>
/// <param name="Access">Read for sources, Write for destinations, ReadWrite for AXPY's y.</param>
internal readonly record struct MemoryOperand(string Name, ulong Iova, ulong Length, Access Access)
{
    /// <summary>One past the last byte of the range.</summary>
    public ulong End => Iova + Length;
}

/// <summary>A command buffer that decoded and validated completely, in submission order.</summary>
internal sealed record DecodedProgram(ImmutableArray<DecodedCommand> Commands);

/// <summary>
/// One validated command. <see cref="Index"/> is its position in the buffer and <see cref="Offset"/> the byte offset
/// of its command header, so later errors (faults, timeouts) can name it the way the decoder does.
/// </summary>
internal abstract record DecodedCommand(int Index, int Offset)
{
    public abstract Opcode Opcode { get; }

    /// <summary>Every memory range the command reads or writes. Empty for fence commands.</summary>
    public abstract IEnumerable<MemoryOperand> Operands { get; }

    /// <summary>The wire name of the opcode, e.g. "ADD_F32".</summary>
    public string Name => CommandBufferFormat.NameOf(Opcode);

    /// <summary>The phrase that starts every message about this command, e.g. "command #3 (ADD_F32) at byte 56".</summary>
    public string Location => $"command #{Index} ({Name}) at byte {Offset}";
}

/// <summary>FILL: <see cref="Length"/> bytes at <see cref="Dst"/> repeat the little-endian bytes of <see cref="Pattern"/>.</summary>
internal sealed record FillCommand(int Index, int Offset, ulong Dst, ulong Length, uint Pattern) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.Fill;
    public override IEnumerable<MemoryOperand> Operands => [new("dst", Dst, Length, Access.Write)];
}

/// <summary>COPY: memmove of <see cref="Length"/> bytes from <see cref="Src"/> to <see cref="Dst"/>.</summary>
internal sealed record CopyCommand(int Index, int Offset, ulong Dst, ulong Src, ulong Length) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.Copy;
    public override IEnumerable<MemoryOperand> Operands =>
        [new("dst", Dst, Length, Access.Write), new("src", Src, Length, Access.Read)];
}

/// <summary>ADD_F32: dst[i] = a[i] + b[i] for <see cref="Count"/> float32 elements.</summary>
internal sealed record AddF32Command(int Index, int Offset, ulong Dst, ulong A, ulong B, ulong Count) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.AddF32;
    public ulong ByteLength => Count * sizeof(float);
    public override IEnumerable<MemoryOperand> Operands =>
    [
        new("dst", Dst, ByteLength, Access.Write),
        new("a", A, ByteLength, Access.Read),
        new("b", B, ByteLength, Access.Read),
    ];
}

/// <summary>SCALE_F32: dst[i] = alpha * src[i] for <see cref="Count"/> float32 elements.</summary>
internal sealed record ScaleF32Command(int Index, int Offset, ulong Dst, ulong Src, ulong Count, float Alpha) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.ScaleF32;
    public ulong ByteLength => Count * sizeof(float);
    public override IEnumerable<MemoryOperand> Operands =>
        [new("dst", Dst, ByteLength, Access.Write), new("src", Src, ByteLength, Access.Read)];
}

/// <summary>AXPY_F32: y[i] = alpha * x[i] + y[i] for <see cref="Count"/> float32 elements.</summary>
internal sealed record AxpyF32Command(int Index, int Offset, ulong Y, ulong X, ulong Count, float Alpha) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.AxpyF32;
    public ulong ByteLength => Count * sizeof(float);
    public override IEnumerable<MemoryOperand> Operands =>
        [new("y", Y, ByteLength, Access.ReadWrite), new("x", X, ByteLength, Access.Read)];
}

/// <summary>MATMUL_F32: C(M×N) = A(M×K)·B(K×N), row-major float32.</summary>
internal sealed record MatMulF32Command(int Index, int Offset, ulong C, ulong A, ulong B, uint M, uint N, uint K) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.MatMulF32;
    public ulong CByteLength => (ulong)M * N * sizeof(float);
    public ulong AByteLength => (ulong)M * K * sizeof(float);
    public ulong BByteLength => (ulong)K * N * sizeof(float);
    public override IEnumerable<MemoryOperand> Operands =>
    [
        new("c", C, CByteLength, Access.Write),
        new("a", A, AByteLength, Access.Read),
        new("b", B, BByteLength, Access.Read),
    ];
}

/// <summary>REDUCE_SUM_F32: the float32 at <see cref="Dst"/> = the sum of <see cref="Count"/> float32 elements at <see cref="Src"/>.</summary>
internal sealed record ReduceSumF32Command(int Index, int Offset, ulong Dst, ulong Src, ulong Count) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.ReduceSumF32;
    public ulong ByteLength => Count * sizeof(float);
    public override IEnumerable<MemoryOperand> Operands =>
        [new("dst", Dst, sizeof(float), Access.Write), new("src", Src, ByteLength, Access.Read)];
}

/// <summary>CHECKSUM: the u32 at <see cref="Dst"/> = CRC-32C of <see cref="Length"/> bytes at <see cref="Src"/>.</summary>
internal sealed record ChecksumCommand(int Index, int Offset, ulong Dst, ulong Src, ulong Length) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.Checksum;
    public override IEnumerable<MemoryOperand> Operands =>
        [new("dst", Dst, sizeof(uint), Access.Write), new("src", Src, Length, Access.Read)];
}

/// <summary>SIGNAL_FENCE: signals the submission's out-fence number <see cref="Slot"/>.</summary>
internal sealed record SignalFenceCommand(int Index, int Offset, uint Slot) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.SignalFence;
    public override IEnumerable<MemoryOperand> Operands => [];
}

/// <summary>WAIT_FENCE: waits for the submission's in-fence number <see cref="Slot"/>; <see cref="TimeoutMs"/> 0 means the device default.</summary>
internal sealed record WaitFenceCommand(int Index, int Offset, uint Slot, uint TimeoutMs) : DecodedCommand(Index, Offset)
{
    public override Opcode Opcode => Opcode.WaitFence;
    public override IEnumerable<MemoryOperand> Operands => [];
}
