using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using Fabric.Core;
using Fabric.Core.Commands;

namespace Fabric.Devices.Internal.Commands;

/// <summary>
/// Decodes and fully validates a command buffer (<see cref="CommandBufferFormat"/>) before anything runs. It never
/// throws: every input yields either a <see cref="DecodedProgram"/> or exactly one <see cref="FabricError"/> whose
/// sentence names the offending command ("command #3 (ADD_F32) at byte 56: ...") and what is wrong with it.
/// <para>
/// Error classes: structural problems (truncation, magic, version, flags, reserved fields, length and count fields,
/// limits, unknown opcodes, sizes), misaligned float32 operands, zero lengths and out-of-range fence slots are
/// <see cref="ErrorCode.EINVAL"/>; operand sizes that overflow 64 bits, exceed
/// <see cref="CommandBufferFormat.MaxOperandLength"/> or whose IOVA range would wrap past 2^64 are
/// <see cref="ErrorCode.EOVERFLOW"/>. A range must end strictly below 2^64, so <see cref="MemoryOperand.End"/> is
/// always representable.
/// </para>
/// </summary>
internal static class CommandDecoder
{
    private const ulong F32Alignment = sizeof(float);

    /// <param name="inFenceSlots">Number of in-fences of the submission; WAIT_FENCE slots must be below it.</param>
    /// <param name="outFenceSlots">Number of out-fences of the submission; SIGNAL_FENCE slots must be below it.</param>
    public static bool TryDecode(ReadOnlySpan<byte> buffer, int inFenceSlots, int outFenceSlots,
        [NotNullWhen(true)] out DecodedProgram? program, [NotNullWhen(false)] out FabricError? error)
    {
        error = Decode(buffer, inFenceSlots, outFenceSlots, out var commands);
        program = error is null ? new DecodedProgram(commands) : null;
        return error is null;
    }

    private static FabricError? Decode(ReadOnlySpan<byte> buffer, int inFenceSlots, int outFenceSlots,
        out ImmutableArray<DecodedCommand> commands)
    {
        commands = [];
        if (buffer.Length > CommandBufferFormat.MaxBufferLength)
            return Invalid($"command buffer is {buffer.Length} bytes, over the limit of {CommandBufferFormat.MaxBufferLength}");
        if (buffer.Length < CommandBufferFormat.HeaderSize)
            return Invalid($"command buffer is truncated: {buffer.Length} bytes, the header alone needs {CommandBufferFormat.HeaderSize}");

        var magic = BinaryPrimitives.ReadUInt32LittleEndian(buffer[CommandBufferFormat.MagicOffset..]);
        if (magic != CommandBufferFormat.Magic)
            return Invalid($"command buffer header has bad magic 0x{magic:x8}, expected 0x{CommandBufferFormat.Magic:x8} ('FCB1')");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(buffer[CommandBufferFormat.VersionOffset..]);
        if (version != CommandBufferFormat.Version)
            return Invalid($"command buffer header has unsupported version {version}, expected {CommandBufferFormat.Version}");
        var flags = BinaryPrimitives.ReadUInt16LittleEndian(buffer[CommandBufferFormat.FlagsOffset..]);
        if (flags != 0)
            return Invalid($"command buffer header has flags 0x{flags:x4}, but no flags are defined and the field must be 0");
        var count = BinaryPrimitives.ReadUInt32LittleEndian(buffer[CommandBufferFormat.CountOffset..]);
        var totalLength = BinaryPrimitives.ReadUInt32LittleEndian(buffer[CommandBufferFormat.TotalLengthOffset..]);
        if (totalLength > (uint)buffer.Length)
            return Invalid($"command buffer is truncated: its header declares {totalLength} bytes but only {buffer.Length} were given");
        if (totalLength != (uint)buffer.Length)
            return Invalid($"command buffer header declares a total length of {totalLength} bytes but the buffer is {buffer.Length} bytes");
        if (count > CommandBufferFormat.MaxCommands)
            return Invalid($"command buffer header declares {count} commands, over the limit of {CommandBufferFormat.MaxCommands}");

        // Every command is at least 16 bytes, so this bounds the allocation by the buffer length, not the count field.
        var capacity = (int)Math.Min(count, (uint)(buffer.Length - CommandBufferFormat.HeaderSize) / 16);
        var builder = ImmutableArray.CreateBuilder<DecodedCommand>(capacity);
        var offset = CommandBufferFormat.HeaderSize;
        var index = 0;
        while (offset < buffer.Length)
        {
            if ((uint)index >= count)
                return Invalid($"command buffer holds more commands than the {count} its header declares: command #{index} starts at byte {offset}");
            var remaining = buffer.Length - offset;
            if (remaining < CommandBufferFormat.CommandHeaderSize)
                return Invalid($"command #{index} at byte {offset} is truncated: {remaining} bytes left, a command header needs {CommandBufferFormat.CommandHeaderSize}");

            var opcode = (Opcode)BinaryPrimitives.ReadUInt16LittleEndian(buffer[(offset + CommandBufferFormat.OpcodeOffset)..]);
            var commandFlags = BinaryPrimitives.ReadUInt16LittleEndian(buffer[(offset + CommandBufferFormat.CommandFlagsOffset)..]);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(buffer[(offset + CommandBufferFormat.CommandSizeOffset)..]);
            var fixedSize = CommandBufferFormat.SizeOf(opcode);
            if (fixedSize == 0)
                return Invalid($"command #{index} at byte {offset}: unknown opcode 0x{(ushort)opcode:x4}");

            var where = $"command #{index} ({CommandBufferFormat.NameOf(opcode)}) at byte {offset}";
            if (commandFlags != 0)
                return Invalid($"{where}: flags 0x{commandFlags:x4} are not 0");
            if (size % CommandBufferFormat.CommandAlignment != 0)
                return Invalid($"{where}: size {size} is not a multiple of {CommandBufferFormat.CommandAlignment}");
            if (size != (uint)fixedSize)
                return Invalid($"{where}: size {size} does not match the fixed size {fixedSize} of {CommandBufferFormat.NameOf(opcode)}");
            if (remaining < fixedSize)
                return Invalid($"{where} is truncated: {remaining} bytes left of its {fixedSize}");

            var reader = new Fields(buffer.Slice(offset, fixedSize), where);
            var failure = DecodeCommand(opcode, index, offset, reader, inFenceSlots, outFenceSlots, out var command);
            if (failure is not null)
                return failure;
            builder.Add(command!);
            offset += fixedSize;
            index++;
        }

        if ((uint)index != count)
            return Invalid($"command buffer header declares {count} commands but the buffer holds {index}");
        commands = builder.DrainToImmutable();
        return null;
    }

    private static FabricError? DecodeCommand(Opcode opcode, int index, int offset, Fields f, int inFenceSlots, int outFenceSlots,
        out DecodedCommand? command)
    {
        command = null;
        FabricError? e;
        ulong bytes;
        switch (opcode)
        {
            case Opcode.Fill:
            {
                ulong dst = f.U64(8), length = f.U64(16);
                uint pattern = f.U32(24);
                e = f.Reserved32(28) ?? f.NonZero("length", length) ?? f.Bytes("dst", length) ?? f.Range("dst", dst, length, 1);
                if (e is not null)
                    return e;
                command = new FillCommand(index, offset, dst, length, pattern);
                return null;
            }
            case Opcode.Copy:
            {
                ulong dst = f.U64(8), src = f.U64(16), length = f.U64(24);
                e = f.NonZero("length", length) ?? f.Bytes("dst", length)
                    ?? f.Range("dst", dst, length, 1) ?? f.Range("src", src, length, 1);
                if (e is not null)
                    return e;
                command = new CopyCommand(index, offset, dst, src, length);
                return null;
            }
            case Opcode.AddF32:
            {
                ulong dst = f.U64(8), a = f.U64(16), b = f.U64(24), count = f.U64(32);
                if ((e = f.NonZero("count", count)) is not null || (e = f.Elements("dst", count, 1, out bytes)) is not null)
                    return e;
                e = f.Range("dst", dst, bytes, F32Alignment) ?? f.Range("a", a, bytes, F32Alignment) ?? f.Range("b", b, bytes, F32Alignment);
                if (e is not null)
                    return e;
                command = new AddF32Command(index, offset, dst, a, b, count);
                return null;
            }
            case Opcode.ScaleF32:
            case Opcode.AxpyF32:
            {
                ulong dst = f.U64(8), src = f.U64(16), count = f.U64(24);
                float alpha = f.F32(32);
                var (dstName, srcName) = opcode == Opcode.ScaleF32 ? ("dst", "src") : ("y", "x");
                if ((e = f.Reserved32(36) ?? f.NonZero("count", count)) is not null
                    || (e = f.Elements(dstName, count, 1, out bytes)) is not null)
                    return e;
                e = f.Range(dstName, dst, bytes, F32Alignment) ?? f.Range(srcName, src, bytes, F32Alignment);
                if (e is not null)
                    return e;
                command = opcode == Opcode.ScaleF32
                    ? new ScaleF32Command(index, offset, dst, src, count, alpha)
                    : new AxpyF32Command(index, offset, dst, src, count, alpha);
                return null;
            }
            case Opcode.MatMulF32:
            {
                ulong c = f.U64(8), a = f.U64(16), b = f.U64(24);
                uint m = f.U32(32), n = f.U32(36), k = f.U32(40);
                if ((e = f.Reserved32(44) ?? f.NonZero("m", m) ?? f.NonZero("n", n) ?? f.NonZero("k", k)) is not null
                    || (e = f.Elements("c", m, n, out var cBytes)) is not null
                    || (e = f.Elements("a", m, k, out var aBytes)) is not null
                    || (e = f.Elements("b", k, n, out var bBytes)) is not null)
                    return e;
                e = f.Range("c", c, cBytes, F32Alignment) ?? f.Range("a", a, aBytes, F32Alignment) ?? f.Range("b", b, bBytes, F32Alignment);
                if (e is not null)
                    return e;
                command = new MatMulF32Command(index, offset, c, a, b, m, n, k);
                return null;
            }
            case Opcode.ReduceSumF32:
            {
                ulong dst = f.U64(8), src = f.U64(16), count = f.U64(24);
                if ((e = f.NonZero("count", count)) is not null || (e = f.Elements("src", count, 1, out bytes)) is not null)
                    return e;
                e = f.Range("dst", dst, sizeof(float), F32Alignment) ?? f.Range("src", src, bytes, F32Alignment);
                if (e is not null)
                    return e;
                command = new ReduceSumF32Command(index, offset, dst, src, count);
                return null;
            }
            case Opcode.Checksum:
            {
                ulong dst = f.U64(8), src = f.U64(16), length = f.U64(24);
                e = f.NonZero("length", length) ?? f.Bytes("src", length)
                    ?? f.Range("dst", dst, sizeof(uint), F32Alignment) ?? f.Range("src", src, length, 1);
                if (e is not null)
                    return e;
                command = new ChecksumCommand(index, offset, dst, src, length);
                return null;
            }
            case Opcode.SignalFence:
            {
                uint slot = f.U32(8);
                if ((e = f.Reserved32(12)) is not null)
                    return e;
                var slots = (uint)Math.Max(outFenceSlots, 0);
                if (slot >= slots)
                    return f.Invalid($"out-fence slot {slot} is out of range: the submission has {slots} out-fences");
                command = new SignalFenceCommand(index, offset, slot);
                return null;
            }
            case Opcode.WaitFence:
            {
                uint slot = f.U32(8), timeoutMs = f.U32(12);
                var slots = (uint)Math.Max(inFenceSlots, 0);
                if (slot >= slots)
                    return f.Invalid($"in-fence slot {slot} is out of range: the submission has {slots} in-fences");
                command = new WaitFenceCommand(index, offset, slot, timeoutMs);
                return null;
            }
            default:
                // Unreachable: unknown opcodes are rejected before the payload is read.
                return f.Invalid($"unknown opcode 0x{(ushort)opcode:x4}");
        }
    }

    private static FabricError Invalid(string message) => new(ErrorCode.EINVAL, message);

    /// <summary>Reads the payload of one command (whose size was already checked) and words its errors.</summary>
    private readonly ref struct Fields(ReadOnlySpan<byte> command, string where)
    {
        private readonly ReadOnlySpan<byte> _command = command;

        public ulong U64(int at) => BinaryPrimitives.ReadUInt64LittleEndian(_command[at..]);
        public uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(_command[at..]);
        public float F32(int at) => BinaryPrimitives.ReadSingleLittleEndian(_command[at..]);

        public FabricError Invalid(string what) => new(ErrorCode.EINVAL, $"{where}: {what}");
        public FabricError Overflow(string what) => new(ErrorCode.EOVERFLOW, $"{where}: {what}");

        public FabricError? Reserved32(int at)
        {
            var value = U32(at);
            return value == 0 ? null : Invalid($"reserved field at byte +{at} is 0x{value:x8}, it must be 0");
        }

        public FabricError? NonZero(string field, ulong value) => value != 0 ? null : Invalid($"{field} is 0");

        /// <summary>Checks a byte length against the operand limit.</summary>
        public FabricError? Bytes(string operand, ulong bytes) =>
            bytes <= CommandBufferFormat.MaxOperandLength
                ? null
                : Overflow($"operand {operand} is {bytes} bytes, over the limit of 2^40 bytes");

        /// <summary>Computes rows × cols float32 elements in bytes without overflowing, then checks the operand limit.</summary>
        public FabricError? Elements(string operand, ulong rows, ulong cols, out ulong bytes)
        {
            bytes = 0;
            var high = Math.BigMul(rows, cols, out var elements);
            if (high != 0 || elements > ulong.MaxValue / sizeof(float))
                return cols == 1
                    ? Overflow($"operand {operand} of {rows} float32 elements overflows 64 bits")
                    : Overflow($"operand {operand} of {rows} x {cols} float32 elements overflows 64 bits");
            bytes = elements * sizeof(float);
            return Bytes(operand, bytes);
        }

        /// <summary>Checks an operand's alignment and that [iova, iova + length) ends below 2^64.</summary>
        public FabricError? Range(string operand, ulong iova, ulong length, ulong alignment)
        {
            if (iova % alignment != 0)
                return Invalid($"misaligned operand {operand}: IOVA 0x{iova:x} is not {alignment}-byte aligned");
            if (length > ulong.MaxValue - iova)
                return Overflow($"operand {operand} at IOVA 0x{iova:x} with length {length} wraps past the end of the 64-bit address space");
            return null;
        }
    }
}
