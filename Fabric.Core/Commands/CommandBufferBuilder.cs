using System.Buffers.Binary;

namespace Fabric.Core.Commands;

/// <summary>
/// Writes a command buffer in the format of <see cref="CommandBufferFormat"/>. Each method appends one command and
/// returns the builder, so calls chain: <c>new CommandBufferBuilder().Fill(0x1000, 64, 0xdeadbeef).Checksum(0x2000, 0x1000, 64).Build()</c>.
/// <para>
/// The builder encodes operand values exactly as given and does not check them against device rules (alignment, zero
/// lengths, overflow, fence slots): the device validates every buffer when it is submitted. It only refuses to grow
/// past the structural limits <see cref="CommandBufferFormat.MaxCommands"/> and
/// <see cref="CommandBufferFormat.MaxBufferLength"/>, throwing <see cref="InvalidOperationException"/>.
/// </para>
/// </summary>
public sealed class CommandBufferBuilder
{
    private byte[] _buffer = new byte[256];
    private int _length = CommandBufferFormat.HeaderSize;

    /// <summary>Number of commands appended so far.</summary>
    public int Count { get; private set; }

    /// <summary>Length in bytes the buffer returned by <see cref="Build"/> would have now, header included.</summary>
    public int Length => _length;

    /// <summary>FILL: writes <paramref name="length"/> bytes at <paramref name="dst"/>, repeating the little-endian bytes of <paramref name="pattern"/>.</summary>
    public CommandBufferBuilder Fill(ulong dst, ulong length, uint pattern)
    {
        var p = Begin(Opcode.Fill);
        WriteU64(p, 8, dst);
        WriteU64(p, 16, length);
        WriteU32(p, 24, pattern);
        return this;
    }

    /// <summary>COPY: copies <paramref name="length"/> bytes from <paramref name="src"/> to <paramref name="dst"/>; the ranges may overlap.</summary>
    public CommandBufferBuilder Copy(ulong dst, ulong src, ulong length)
    {
        var p = Begin(Opcode.Copy);
        WriteU64(p, 8, dst);
        WriteU64(p, 16, src);
        WriteU64(p, 24, length);
        return this;
    }

    /// <summary>ADD_F32: dst[i] = a[i] + b[i] for <paramref name="count"/> float32 elements.</summary>
    public CommandBufferBuilder Add(ulong dst, ulong a, ulong b, ulong count)
    {
        var p = Begin(Opcode.AddF32);
        WriteU64(p, 8, dst);
        WriteU64(p, 16, a);
        WriteU64(p, 24, b);
        WriteU64(p, 32, count);
        return this;
    }

    /// <summary>SCALE_F32: dst[i] = alpha * src[i] for <paramref name="count"/> float32 elements.</summary>
    public CommandBufferBuilder Scale(ulong dst, ulong src, ulong count, float alpha)
    {
        var p = Begin(Opcode.ScaleF32);
        WriteU64(p, 8, dst);
        WriteU64(p, 16, src);
        WriteU64(p, 24, count);
        WriteF32(p, 32, alpha);
        return this;
    }

    /// <summary>AXPY_F32: y[i] = alpha * x[i] + y[i] for <paramref name="count"/> float32 elements.</summary>
    public CommandBufferBuilder Axpy(ulong y, ulong x, ulong count, float alpha)
    {
        var p = Begin(Opcode.AxpyF32);
        WriteU64(p, 8, y);
        WriteU64(p, 16, x);
        WriteU64(p, 24, count);
        WriteF32(p, 32, alpha);
        return this;
    }

    /// <summary>MATMUL_F32: C(m×n) = A(m×k)·B(k×n), all row-major float32.</summary>
    public CommandBufferBuilder MatMul(ulong c, ulong a, ulong b, uint m, uint n, uint k)
    {
        var p = Begin(Opcode.MatMulF32);
        WriteU64(p, 8, c);
        WriteU64(p, 16, a);
        WriteU64(p, 24, b);
        WriteU32(p, 32, m);
        WriteU32(p, 36, n);
        WriteU32(p, 40, k);
        return this;
    }

    /// <summary>REDUCE_SUM_F32: dst (one float32) = the sum of <paramref name="count"/> float32 elements at <paramref name="src"/>.</summary>
    public CommandBufferBuilder ReduceSum(ulong dst, ulong src, ulong count)
    {
        var p = Begin(Opcode.ReduceSumF32);
        WriteU64(p, 8, dst);
        WriteU64(p, 16, src);
        WriteU64(p, 24, count);
        return this;
    }

    /// <summary>CHECKSUM: dst (u32) = CRC-32C of <paramref name="length"/> bytes at <paramref name="src"/>.</summary>
    public CommandBufferBuilder Checksum(ulong dst, ulong src, ulong length)
    {
        var p = Begin(Opcode.Checksum);
        WriteU64(p, 8, dst);
        WriteU64(p, 16, src);
        WriteU64(p, 24, length);
        return this;
    }

    /// <summary>SIGNAL_FENCE: signals the submission's out-fence number <paramref name="slot"/>.</summary>
    public CommandBufferBuilder SignalFence(uint slot)
    {
        var p = Begin(Opcode.SignalFence);
        WriteU32(p, 8, slot);
        return this;
    }

    /// <summary>WAIT_FENCE: waits for the submission's in-fence number <paramref name="slot"/>; a timeout of 0 means the device default.</summary>
    public CommandBufferBuilder WaitFence(uint slot, uint timeoutMs = 0)
    {
        var p = Begin(Opcode.WaitFence);
        WriteU32(p, 8, slot);
        WriteU32(p, 12, timeoutMs);
        return this;
    }

    /// <summary>Returns a new array holding the header and every command appended so far.</summary>
    public byte[] Build()
    {
        var result = new byte[_length];
        _buffer.AsSpan(0, _length).CopyTo(result);
        var header = result.AsSpan(0, CommandBufferFormat.HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(header[CommandBufferFormat.MagicOffset..], CommandBufferFormat.Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(header[CommandBufferFormat.VersionOffset..], CommandBufferFormat.Version);
        BinaryPrimitives.WriteUInt16LittleEndian(header[CommandBufferFormat.FlagsOffset..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(header[CommandBufferFormat.CountOffset..], (uint)Count);
        BinaryPrimitives.WriteUInt32LittleEndian(header[CommandBufferFormat.TotalLengthOffset..], (uint)_length);
        return result;
    }

    /// <summary>Reserves one zeroed command of <paramref name="opcode"/>'s size, writes its header and returns it.</summary>
    private Span<byte> Begin(Opcode opcode)
    {
        var size = CommandBufferFormat.SizeOf(opcode);
        if (Count >= CommandBufferFormat.MaxCommands)
            throw new InvalidOperationException(
                $"cannot append {CommandBufferFormat.NameOf(opcode)}: the buffer already holds the maximum of {CommandBufferFormat.MaxCommands} commands");
        if (_length + size > CommandBufferFormat.MaxBufferLength)
            throw new InvalidOperationException(
                $"cannot append {CommandBufferFormat.NameOf(opcode)}: the buffer would grow to {_length + size} bytes, over the limit of {CommandBufferFormat.MaxBufferLength}");
        if (_length + size > _buffer.Length)
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + size));

        var command = _buffer.AsSpan(_length, size);
        command.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(command[CommandBufferFormat.OpcodeOffset..], (ushort)opcode);
        BinaryPrimitives.WriteUInt16LittleEndian(command[CommandBufferFormat.CommandFlagsOffset..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(command[CommandBufferFormat.CommandSizeOffset..], (uint)size);
        _length += size;
        Count++;
        return command;
    }

    private static void WriteU32(Span<byte> command, int offset, uint value) =>
        BinaryPrimitives.WriteUInt32LittleEndian(command[offset..], value);

    private static void WriteU64(Span<byte> command, int offset, ulong value) =>
        BinaryPrimitives.WriteUInt64LittleEndian(command[offset..], value);

    private static void WriteF32(Span<byte> command, int offset, float value) =>
        BinaryPrimitives.WriteSingleLittleEndian(command[offset..], value);
}
