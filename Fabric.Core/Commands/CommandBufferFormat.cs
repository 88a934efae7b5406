namespace Fabric.Core.Commands;

/// <summary>
/// Constants of the Fabric command buffer format: a compact little-endian binary stream.
/// <para>
/// Buffer header (16 bytes): magic u32 @0 (<see cref="Magic"/>, the bytes 'F','C','B','1'), version u16 @4
/// (<see cref="Version"/>), flags u16 @6 (must be 0), command count u32 @8, total length u32 @12 (the whole buffer
/// including the header; must equal the actual length).
/// </para>
/// <para>
/// Then exactly <c>count</c> commands back to back. Each starts with an 8-byte command header: opcode u16 @0, flags u16
/// @2 (must be 0), size u32 @4 (the whole command including its header; must equal the opcode's fixed size from
/// <see cref="SizeOf"/>). All sizes are multiples of 8 and all reserved fields must be 0. Payload layouts are on the
/// members of <see cref="Opcode"/> and in <c>Fabric.Core/Commands/README.md</c>.
/// </para>
/// </summary>
public static class CommandBufferFormat
{
    /// <summary>Buffer magic, little-endian u32 of the bytes 'F','C','B','1'.</summary>
    public const uint Magic = 0x31424346;

    /// <summary>The only format version.</summary>
    public const ushort Version = 1;

    /// <summary>Size of the buffer header in bytes.</summary>
    public const int HeaderSize = 16;

    /// <summary>Size of every command header in bytes.</summary>
    public const int CommandHeaderSize = 8;

    /// <summary>Every command size is a multiple of this.</summary>
    public const int CommandAlignment = 8;

    /// <summary>Largest accepted buffer, header included: 1 MiB.</summary>
    public const int MaxBufferLength = 1 << 20;

    /// <summary>Most commands one buffer may hold.</summary>
    public const int MaxCommands = 65_536;

    /// <summary>Largest memory operand one command may touch: 2^40 bytes (1 TiB).</summary>
    public const ulong MaxOperandLength = 1UL << 40;

    /// <summary>Byte offsets inside the buffer header.</summary>
    public const int MagicOffset = 0, VersionOffset = 4, FlagsOffset = 6, CountOffset = 8, TotalLengthOffset = 12;

    /// <summary>Byte offsets inside a command header.</summary>
    public const int OpcodeOffset = 0, CommandFlagsOffset = 2, CommandSizeOffset = 4;

    /// <summary>The fixed size of a command with <paramref name="opcode"/> in bytes, header included; 0 for an unknown opcode.</summary>
    public static int SizeOf(Opcode opcode) => opcode switch
    {
        Opcode.Fill => 32,
        Opcode.Copy => 32,
        Opcode.AddF32 => 40,
        Opcode.ScaleF32 => 40,
        Opcode.AxpyF32 => 40,
        Opcode.MatMulF32 => 48,
        Opcode.ReduceSumF32 => 32,
        Opcode.Checksum => 32,
        Opcode.SignalFence => 16,
        Opcode.WaitFence => 16,
        _ => 0,
    };

    /// <summary>Whether <paramref name="opcode"/> is defined by this format version.</summary>
    public static bool IsKnown(Opcode opcode) => SizeOf(opcode) != 0;

    /// <summary>The wire name of <paramref name="opcode"/> as used in documentation and error messages, e.g. "ADD_F32";
    /// "0x00ff" for an unknown opcode.</summary>
    public static string NameOf(Opcode opcode) => opcode switch
    {
        Opcode.Fill => "FILL",
        Opcode.Copy => "COPY",
        Opcode.AddF32 => "ADD_F32",
        Opcode.ScaleF32 => "SCALE_F32",
        Opcode.AxpyF32 => "AXPY_F32",
        Opcode.MatMulF32 => "MATMUL_F32",
        Opcode.ReduceSumF32 => "REDUCE_SUM_F32",
        Opcode.Checksum => "CHECKSUM",
        Opcode.SignalFence => "SIGNAL_FENCE",
        Opcode.WaitFence => "WAIT_FENCE",
        _ => $"0x{(ushort)opcode:x4}",
    };
}
