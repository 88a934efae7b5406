using System.Buffers.Binary;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Devices.Internal.Commands;

namespace Fabric.Tests.Commands;

/// <summary>
/// Throws random and mutated buffers at the decoder. Seeds are fixed, so a failure replays; the iteration number is in
/// every assertion message.
/// </summary>
public sealed class CommandDecoderFuzzTests
{
    private const int InFences = 3;
    private const int OutFences = 2;

    private static readonly ulong[] InterestingValues =
    [
        0, 1, 2, 3, 4, 7, 8, 0xFF, 0xFFFF, 0xFFFF_FFFF, 1UL << 32, (1UL << 38) + 1, 1UL << 40, (1UL << 40) + 1,
        1UL << 62, 1UL << 63, ulong.MaxValue - 3, ulong.MaxValue,
    ];

    private sealed class Tally
    {
        public int Accepted, Rejected;
        public readonly HashSet<ErrorCode> Codes = [];
    }

    [Fact]
    public void Random_bytes_never_make_the_decoder_throw()
    {
        var random = new Random(20_240_601);
        var tally = new Tally();
        for (var iteration = 0; iteration < 10_000; iteration++)
        {
            var bytes = new byte[random.Next(0, 400)];
            random.NextBytes(bytes);
            if (iteration % 2 == 0 && bytes.Length >= CommandBufferFormat.HeaderSize)
            {
                // Half get a plausible header so the random bytes reach the command parser.
                BinaryPrimitives.WriteUInt32LittleEndian(bytes, CommandBufferFormat.Magic);
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), CommandBufferFormat.Version);
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)random.Next(0, 30));
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12), (uint)bytes.Length);
            }
            Check(bytes, iteration, tally);
        }
        Assert.True(tally.Rejected > 9_000, $"only {tally.Rejected} rejected");
    }

    [Fact]
    public void Mutated_valid_buffers_never_make_the_decoder_throw_and_accepted_ones_are_valid()
    {
        var random = new Random(424_242);
        var tally = new Tally();
        for (var iteration = 0; iteration < 30_000; iteration++)
        {
            var (original, valid) = RandomProgram(random);
            var accepted = Check(original, iteration, tally);
            Assert.True(valid == accepted, $"iteration {iteration}: the test's model says valid={valid}, the decoder accepted={accepted}");
            var mutated = Mutate(random, original);
            Check(mutated, iteration, tally);
        }

        Assert.True(tally.Accepted > 10_000, $"only {tally.Accepted} accepted");
        Assert.True(tally.Rejected > 10_000, $"only {tally.Rejected} rejected");
        Assert.Contains(ErrorCode.EINVAL, tally.Codes);
        Assert.Contains(ErrorCode.EOVERFLOW, tally.Codes);
    }

    private static bool Check(byte[] bytes, int iteration, Tally tally)
    {
        bool ok;
        DecodedProgram? program;
        FabricError? error;
        try
        {
            ok = CommandDecoder.TryDecode(bytes, InFences, OutFences, out program, out error);
        }
        catch (Exception e)
        {
            Assert.Fail($"iteration {iteration}: TryDecode threw {e} on {Convert.ToHexString(bytes)}");
            return false;
        }

        if (ok)
        {
            Assert.NotNull(program);
            Assert.Null(error);
            AssertValid(program, bytes, iteration);
            tally.Accepted++;
            return true;
        }
        else
        {
            Assert.Null(program);
            Assert.NotNull(error);
            Assert.True(error.Code is ErrorCode.EINVAL or ErrorCode.EOVERFLOW, $"iteration {iteration}: unexpected code {error}");
            Assert.False(string.IsNullOrWhiteSpace(error.Message));
            tally.Rejected++;
            tally.Codes.Add(error.Code);
            return false;
        }
    }

    /// <summary>Checks an accepted program against the format rules, independently of the decoder's own checks.</summary>
    private static void AssertValid(DecodedProgram program, byte[] bytes, int iteration)
    {
        Assert.True(bytes.Length <= CommandBufferFormat.MaxBufferLength);
        Assert.True(program.Commands.Length <= CommandBufferFormat.MaxCommands);
        var offset = CommandBufferFormat.HeaderSize;
        for (var i = 0; i < program.Commands.Length; i++)
        {
            var command = program.Commands[i];
            Assert.Equal(i, command.Index);
            Assert.Equal(offset, command.Offset);
            Assert.Equal((ushort)command.Opcode, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(offset)));
            offset += CommandBufferFormat.SizeOf(command.Opcode);

            foreach (var operand in command.Operands)
            {
                Assert.True(operand.Length > 0, $"iteration {iteration}: {command.Location} has an empty operand {operand}");
                Assert.True(operand.Length <= CommandBufferFormat.MaxOperandLength, $"iteration {iteration}: {operand} too long");
                Assert.True(operand.Length <= ulong.MaxValue - operand.Iova, $"iteration {iteration}: {operand} wraps");
                var mustAlign = command.Opcode is not (Opcode.Fill or Opcode.Copy) && !(command.Opcode == Opcode.Checksum && operand.Name == "src");
                if (mustAlign)
                    Assert.True(operand.Iova % 4 == 0, $"iteration {iteration}: {command.Location} operand {operand} is misaligned");
            }

            switch (command)
            {
                case MatMulF32Command m:
                    Assert.True(m.M > 0 && m.N > 0 && m.K > 0);
                    Assert.True((UInt128)m.M * m.K * 4 <= CommandBufferFormat.MaxOperandLength);
                    break;
                case AddF32Command or ScaleF32Command or AxpyF32Command or ReduceSumF32Command:
                    Assert.Equal(0UL, command.Operands.Last().Length % 4);
                    break;
                case SignalFenceCommand s:
                    Assert.True(s.Slot < OutFences);
                    break;
                case WaitFenceCommand w:
                    Assert.True(w.Slot < InFences);
                    break;
            }
        }
        Assert.Equal(bytes.Length, offset);
        // Reserved fields and flags are zero exactly when the builder reproduces the input byte for byte.
        Assert.Equal(Convert.ToHexString(bytes), Convert.ToHexString(CommandBuffers.Encode(program)));
    }

    // ---- generators ----------------------------------------------------------------------------------------------

    private static ulong Iova(Random random, bool aligned)
    {
        ulong value = random.Next(8) switch
        {
            0 => (ulong)random.NextInt64() << 1,
            1 => ulong.MaxValue - (ulong)random.Next(0, 1 << 16),
            _ => 0x1_0000 + (ulong)random.Next(0, 1 << 24),
        };
        return aligned ? value & ~3UL : value;
    }

    private static ulong Count(Random random) => random.Next(10) switch
    {
        0 => InterestingValues[random.Next(InterestingValues.Length)],
        _ => (ulong)random.Next(1, 5000),
    };

    /// <summary>The test's own model of a valid operand: 1..2^40 bytes, ending below 2^64, 4-byte aligned if float32.</summary>
    private static bool Ok(ulong iova, UInt128 length, bool align) =>
        length > 0 && length <= CommandBufferFormat.MaxOperandLength && iova + length <= ulong.MaxValue && (!align || iova % 4 == 0);

    /// <summary>A buffer of 0–12 random commands, mostly valid but with boundary values (zero, huge, misaligned,
    /// wrapping, out-of-range slots), and whether the test's model says the decoder must accept it.</summary>
    private static (byte[] Bytes, bool Valid) RandomProgram(Random random)
    {
        var b = new CommandBufferBuilder();
        var valid = true;
        var commands = random.Next(0, 13);
        var misalign = random.Next(20) == 0;
        for (var i = 0; i < commands; i++)
        {
            var aligned = !misalign || random.Next(3) != 0;
            switch (random.Next(1, 11))
            {
                case 1:
                {
                    ulong dst = Iova(random, false), length = Count(random);
                    b.Fill(dst, length, (uint)random.Next());
                    valid &= Ok(dst, length, false);
                    break;
                }
                case 2:
                {
                    ulong dst = Iova(random, false), src = Iova(random, false), length = Count(random);
                    b.Copy(dst, src, length);
                    valid &= Ok(dst, length, false) && Ok(src, length, false);
                    break;
                }
                case 3:
                {
                    ulong dst = Iova(random, aligned), x = Iova(random, aligned), y = Iova(random, aligned), count = Count(random);
                    b.Add(dst, x, y, count);
                    var bytes = (UInt128)count * 4;
                    valid &= Ok(dst, bytes, true) && Ok(x, bytes, true) && Ok(y, bytes, true);
                    break;
                }
                case 4:
                case 5:
                {
                    ulong dst = Iova(random, aligned), src = Iova(random, aligned), count = Count(random);
                    if (random.Next(2) == 0)
                        b.Scale(dst, src, count, (float)random.NextDouble());
                    else
                        b.Axpy(dst, src, count, -(float)random.NextDouble());
                    var bytes = (UInt128)count * 4;
                    valid &= Ok(dst, bytes, true) && Ok(src, bytes, true);
                    break;
                }
                case 6:
                {
                    ulong c = Iova(random, aligned), x = Iova(random, aligned), y = Iova(random, aligned);
                    uint m = (uint)Math.Min(Count(random), uint.MaxValue), n = (uint)random.Next(0, 300), k = (uint)Math.Min(Count(random), uint.MaxValue);
                    b.MatMul(c, x, y, m, n, k);
                    valid &= Ok(c, (UInt128)m * n * 4, true) && Ok(x, (UInt128)m * k * 4, true) && Ok(y, (UInt128)k * n * 4, true);
                    break;
                }
                case 7:
                {
                    ulong dst = Iova(random, aligned), src = Iova(random, aligned), count = Count(random);
                    b.ReduceSum(dst, src, count);
                    valid &= Ok(dst, 4, true) && Ok(src, (UInt128)count * 4, true);
                    break;
                }
                case 8:
                {
                    ulong dst = Iova(random, aligned), src = Iova(random, false), length = Count(random);
                    b.Checksum(dst, src, length);
                    valid &= Ok(dst, 4, true) && Ok(src, length, false);
                    break;
                }
                case 9:
                {
                    var slot = (uint)random.Next(0, OutFences + 1);
                    b.SignalFence(slot);
                    valid &= slot < OutFences;
                    break;
                }
                default:
                {
                    var slot = (uint)random.Next(0, InFences + 1);
                    b.WaitFence(slot, (uint)random.Next());
                    valid &= slot < InFences;
                    break;
                }
            }
        }
        return (b.Build(), valid);
    }

    private static byte[] Mutate(Random random, byte[] original)
    {
        var bytes = original.ToArray();
        var fixHeader = random.Next(2) == 0;
        switch (random.Next(6))
        {
            case 0: // bit flips
                for (var flips = random.Next(1, 4); flips > 0; flips--)
                {
                    var bit = random.Next(bytes.Length * 8);
                    bytes[bit / 8] ^= (byte)(1 << (bit % 8));
                }
                break;
            case 1: // truncation
                bytes = bytes.AsSpan(0, random.Next(0, bytes.Length)).ToArray();
                break;
            case 2: // extension with random bytes
            {
                var extra = new byte[random.Next(1, 64)];
                random.NextBytes(extra);
                bytes = [.. bytes, .. extra];
                break;
            }
            case 3: // a u16 field (opcodes, flags, version)
            {
                var at = random.Next(bytes.Length / 2) * 2;
                if (at + 2 <= bytes.Length)
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(at), (ushort)(random.Next(3) == 0 ? random.Next(0, 12) : random.Next()));
                break;
            }
            case 4: // a u32 field (sizes, slots, m/n/k, reserved, counts)
            {
                var at = random.Next(bytes.Length / 4) * 4;
                if (at + 4 <= bytes.Length)
                    BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), (uint)InterestingValues[random.Next(InterestingValues.Length)]);
                break;
            }
            default: // a u64 field (IOVAs, lengths)
            {
                var at = random.Next(bytes.Length / 8) * 8;
                if (at + 8 <= bytes.Length)
                    BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(at),
                        random.Next(2) == 0 ? InterestingValues[random.Next(InterestingValues.Length)] : (ulong)random.NextInt64());
                break;
            }
        }

        if (fixHeader && bytes.Length >= CommandBufferFormat.HeaderSize)
        {
            // Keep the header consistent so the mutation is judged by the command parser, not the length check.
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(CommandBufferFormat.TotalLengthOffset), (uint)bytes.Length);
        }
        return bytes;
    }
}
