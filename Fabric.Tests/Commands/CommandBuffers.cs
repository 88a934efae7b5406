using System.Buffers.Binary;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Devices.Internal.Commands;

namespace Fabric.Tests.Commands;

/// <summary>Helpers to take command buffers apart in tests.</summary>
internal static class CommandBuffers
{
    public const int InFences = 2;
    public const int OutFences = 2;

    public static byte[] With16(this byte[] buffer, int offset, ushort value)
    {
        var copy = buffer.ToArray();
        BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(offset), value);
        return copy;
    }

    public static byte[] With32(this byte[] buffer, int offset, uint value)
    {
        var copy = buffer.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(offset), value);
        return copy;
    }

    public static byte[] With64(this byte[] buffer, int offset, ulong value)
    {
        var copy = buffer.ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(copy.AsSpan(offset), value);
        return copy;
    }

    /// <summary>The first <paramref name="length"/> bytes with the header's total length patched to match.</summary>
    public static byte[] CutTo(this byte[] buffer, int length) =>
        buffer.AsSpan(0, length).ToArray().With32(CommandBufferFormat.TotalLengthOffset, (uint)length);

    public static DecodedProgram Accept(byte[] buffer)
    {
        Assert.True(CommandDecoder.TryDecode(buffer, InFences, OutFences, out var program, out var error), error?.ToString());
        Assert.Null(error);
        return program;
    }

    public static FabricError Reject(byte[] buffer, ErrorCode code, params string[] fragments)
    {
        Assert.False(CommandDecoder.TryDecode(buffer, InFences, OutFences, out var program, out var error));
        Assert.Null(program);
        Assert.NotNull(error);
        Assert.Equal(code, error.Code);
        foreach (var fragment in fragments)
            Assert.Contains(fragment, error.Message);
        return error;
    }

    /// <summary>Writes a program back with the public builder; an accepted buffer must re-encode to the same bytes.</summary>
    public static byte[] Encode(DecodedProgram program)
    {
        var b = new CommandBufferBuilder();
        foreach (var command in program.Commands)
        {
            switch (command)
            {
                case FillCommand c: b.Fill(c.Dst, c.Length, c.Pattern); break;
                case CopyCommand c: b.Copy(c.Dst, c.Src, c.Length); break;
                case AddF32Command c: b.Add(c.Dst, c.A, c.B, c.Count); break;
                case ScaleF32Command c: b.Scale(c.Dst, c.Src, c.Count, c.Alpha); break;
                case AxpyF32Command c: b.Axpy(c.Y, c.X, c.Count, c.Alpha); break;
                case MatMulF32Command c: b.MatMul(c.C, c.A, c.B, c.M, c.N, c.K); break;
                case ReduceSumF32Command c: b.ReduceSum(c.Dst, c.Src, c.Count); break;
                case ChecksumCommand c: b.Checksum(c.Dst, c.Src, c.Length); break;
                case SignalFenceCommand c: b.SignalFence(c.Slot); break;
                case WaitFenceCommand c: b.WaitFence(c.Slot, c.TimeoutMs); break;
                default: throw new InvalidOperationException($"unexpected {command}");
            }
        }
        return b.Build();
    }
}
