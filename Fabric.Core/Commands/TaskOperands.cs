using System.Buffers.Binary;

namespace Fabric.Core.Commands;

/// <summary>
/// Operand-relative addresses: how the program of a device-side task (<see cref="Protocol.TaskRequests.RunTasks"/>)
/// names its memory before the device has decided where that memory is. A task's program is built with
/// <see cref="Address"/>(i, offset) wherever a command reads or writes operand i; the device maps each operand (or
/// finds it mapped), then <see cref="TryRelocate"/> rewrites every address field to the IOVA it got. A task program
/// addresses only its operands: an absolute IOVA in it is refused, so a task cannot touch memory it did not declare.
/// </summary>
public static class TaskOperands
{
    /// <summary>Bit 62: every operand-relative address has it, and nothing else in the encoding does.</summary>
    public const ulong Base = 1UL << 62;

    /// <summary>Operand i's addresses are <see cref="Base"/> | i &lt;&lt; <see cref="IndexShift"/> | offset.</summary>
    public const int IndexShift = 40;

    /// <summary>Most operands one task may name.</summary>
    public const int MaxOperands = 1024;

    private const ulong OffsetMask = (1UL << IndexShift) - 1;

    /// <summary>The address a task program uses for byte <paramref name="offset"/> of its operand <paramref name="operand"/>.</summary>
    public static ulong Address(int operand, ulong offset = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(operand);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(operand, MaxOperands);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, OffsetMask);
        return Base | ((ulong)operand << IndexShift) | offset;
    }

    /// <summary>
    /// A copy of <paramref name="program"/> in which operand i's addresses point into <paramref name="iovas"/>[i]
    /// (an operand of <paramref name="sizes"/>[i] bytes; 0: not known, not checked). Refused (EINVAL, naming the
    /// command): an absolute address, an operand the task did not name, an offset past its operand's end. A program
    /// too malformed to walk is returned unchanged: the device's decoder rejects it with its own precise error.
    /// </summary>
    public static bool TryRelocate(ReadOnlySpan<byte> program, IReadOnlyList<ulong> iovas, IReadOnlyList<long> sizes, out byte[] relocated,
        out FabricError? error)
    {
        relocated = program.ToArray();
        error = null;
        if (program.Length < CommandBufferFormat.HeaderSize) return true;
        var count = BinaryPrimitives.ReadUInt32LittleEndian(program[CommandBufferFormat.CountOffset..]);
        var at = CommandBufferFormat.HeaderSize;
        for (var index = 0; index < count; index++)
        {
            if (at + CommandBufferFormat.CommandHeaderSize > program.Length) return true;
            var opcode = (Opcode)BinaryPrimitives.ReadUInt16LittleEndian(program[(at + CommandBufferFormat.OpcodeOffset)..]);
            var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(program[(at + CommandBufferFormat.CommandSizeOffset)..]);
            if (size != CommandBufferFormat.SizeOf(opcode) || at + size > program.Length) return true;
            foreach (var field in AddressFields(opcode))
            {
                var value = BinaryPrimitives.ReadUInt64LittleEndian(program[(at + field)..]);
                string Where() => $"command #{index} ({CommandBufferFormat.NameOf(opcode)}) at byte {at}, field at +{field}";
                if ((value & Base) == 0 || value >> 63 != 0)
                {
                    error = FabricError.Invalid($"{Where()}: 0x{value:x} is not an operand address; a task's program addresses only its operands " +
                                                "(TaskOperands.Address)");
                    return false;
                }
                var operand = (int)((value & ~Base) >> IndexShift);
                var offset = value & OffsetMask;
                if (operand >= iovas.Count)
                {
                    error = FabricError.Invalid($"{Where()}: names operand {operand}, but the task has {iovas.Count}");
                    return false;
                }
                if (sizes[operand] > 0 && offset >= (ulong)sizes[operand])
                {
                    error = FabricError.Invalid($"{Where()}: offset {offset} is past the end of operand {operand} ({sizes[operand]} bytes)");
                    return false;
                }
                BinaryPrimitives.WriteUInt64LittleEndian(relocated.AsSpan(at + field), iovas[operand] + offset);
            }
            at += size;
        }
        return true;
    }

    /// <summary>The byte offsets, from a command's start, of its u64 address fields (see the format's README).</summary>
    public static ReadOnlySpan<int> AddressFields(Opcode opcode) => opcode switch
    {
        Opcode.Fill => [8],
        Opcode.Copy or Opcode.ScaleF32 or Opcode.AxpyF32 or Opcode.ReduceSumF32 or Opcode.Checksum => [8, 16],
        Opcode.AddF32 or Opcode.MatMulF32 => [8, 16, 24],
        _ => [],
    };
}
