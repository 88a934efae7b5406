using System.Buffers.Binary;
using System.Diagnostics;
using CsCheck;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Devices.Internal.Commands;
using Fabric.Tests.Commands;
using Xunit.Abstractions;

namespace Fabric.Tests.Fuzz;

/// <summary>
/// CsCheck throws 120 000 random and mutated command buffers at the decoder: random bytes (some behind a plausible
/// header), and valid buffers from <see cref="CommandBufferBuilder"/> with bit flips, truncation, length fields at
/// their extremes, commands duplicated or removed, fields overwritten. Every buffer is either a decoded program that
/// re-encodes to the same bytes, or a refusal with EINVAL/EOVERFLOW and a sentence; nothing throws, and a refusal
/// leaves nothing behind (the same buffer is refused the same way again, and a valid buffer still decodes).
/// A failure prints CsCheck's seed; set the environment variable CsCheck_Seed to it to replay.
/// </summary>
public sealed class CommandDecoderCsCheckFuzzTests(ITestOutputHelper output)
{
    private const int InFences = 3;
    private const int OutFences = 2;
    private const int Iterations = 120_000;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(20);

    private static readonly ulong[] Interesting =
    [
        0, 1, 2, 3, 4, 7, 8, 0xFF, 0xFFFF, 0xFFFF_FFFF, 1UL << 32, (1UL << 38) + 1, 1UL << 40, (1UL << 40) + 1,
        1UL << 62, 1UL << 63, ulong.MaxValue - 3, ulong.MaxValue,
    ];

    private static readonly Gen<ulong> Address = Gen.Frequency(
        (4, Gen.ULong[0x1_0000, 0x100_0000].Select(v => v & ~3UL)),
        (1, Gen.ULong),
        (1, Gen.OneOfConst(Interesting)));

    private static readonly Gen<ulong> Count = Gen.Frequency((5, Gen.ULong[1, 5000]), (1, Gen.OneOfConst(Interesting)));

    private sealed record Command(int Kind, ulong A, ulong B, ulong C, ulong N, uint X, uint Y);

    private static readonly Gen<Command> GenCommand = Gen.Select(Gen.Int[0, 9], Address, Address, Address, Count, Gen.UInt[0, 300], Gen.UInt[0, 4],
        (kind, a, b, c, n, x, y) => new Command(kind, a, b, c, n, x, y));

    private static byte[] Build(Command[] commands)
    {
        var b = new CommandBufferBuilder();
        foreach (var c in commands)
        {
            switch (c.Kind)
            {
                case 0: b.Fill(c.A, c.N, c.X); break;
                case 1: b.Copy(c.A, c.B, c.N); break;
                case 2: b.Add(c.A, c.B, c.C, c.N); break;
                case 3: b.Scale(c.A, c.B, c.N, c.X / 7f); break;
                case 4: b.Axpy(c.A, c.B, c.N, -(c.X / 3f)); break;
                case 5: b.MatMul(c.A, c.B, c.C, (uint)Math.Min(c.N, 64), c.X, c.Y + 1); break;
                case 6: b.ReduceSum(c.A, c.B, c.N); break;
                case 7: b.Checksum(c.A, c.B, c.N); break;
                case 8: b.SignalFence(c.Y % (OutFences + 1)); break;
                default: b.WaitFence(c.Y % (InFences + 1), c.X); break;
            }
        }
        return b.Build();
    }

    private static readonly Gen<byte[]> ValidProgram = GenCommand.Array[0, 12].Select(Build);

    private enum Mutation { BitFlip, Truncate, TruncateKeepHeader, Extend, LengthExtreme, CommandSizeExtreme, CountExtreme, Duplicate, Remove, Field16, Field32, Field64 }

    private sealed record Edit(Mutation Kind, int Where, ulong Value, bool FixHeader);

    private static readonly Gen<Edit> GenEdit = Gen.Select(Gen.Enum<Mutation>(), Gen.Int[0, int.MaxValue],
        Gen.Frequency((2, Gen.OneOfConst(Interesting)), (1, Gen.ULong)), Gen.Bool, (k, w, v, f) => new Edit(k, w, v, f));

    /// <summary>Random bytes, half of them behind a header that names the right magic, version and length.</summary>
    private static readonly Gen<byte[]> RandomBuffer = Gen.Select(Gen.Byte.Array[0, 400], Gen.Bool, Gen.UInt[0, 30], (bytes, header, count) =>
    {
        if (header && bytes.Length >= CommandBufferFormat.HeaderSize)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, CommandBufferFormat.Magic);
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(CommandBufferFormat.VersionOffset), CommandBufferFormat.Version);
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(CommandBufferFormat.FlagsOffset), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(CommandBufferFormat.CountOffset), count);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(CommandBufferFormat.TotalLengthOffset), (uint)bytes.Length);
        }
        return bytes;
    });

    private static readonly Gen<byte[]> MutatedProgram = Gen.Select(ValidProgram, GenEdit.Array[1, 3], (bytes, edits) =>
    {
        foreach (var edit in edits) bytes = Apply(bytes, edit);
        return bytes;
    });

    private static readonly Gen<byte[]> Buffers = Gen.Frequency((1, RandomBuffer), (1, ValidProgram), (6, MutatedProgram));

    /// <summary>Offsets of the commands of a buffer the builder wrote (or one that still starts like it).</summary>
    private static List<(int Offset, int Size)> Commands(byte[] bytes)
    {
        var found = new List<(int, int)>();
        for (var at = CommandBufferFormat.HeaderSize; at + CommandBufferFormat.CommandHeaderSize <= bytes.Length;)
        {
            var size = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at + CommandBufferFormat.CommandSizeOffset));
            if (size < CommandBufferFormat.CommandHeaderSize || size > bytes.Length - at) break; // no int overflow on a forged size
            found.Add((at, size));
            at += size;
        }
        return found;
    }

    private static void SetCount(byte[] bytes, int delta)
    {
        if (bytes.Length < CommandBufferFormat.HeaderSize) return;
        var span = bytes.AsSpan(CommandBufferFormat.CountOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)(BinaryPrimitives.ReadUInt32LittleEndian(span) + delta));
    }

    private static byte[] Apply(byte[] original, Edit edit)
    {
        var bytes = original.ToArray();
        var commands = Commands(bytes);
        var where = edit.Where;
        switch (edit.Kind)
        {
            case Mutation.BitFlip when bytes.Length > 0:
                bytes[where % bytes.Length] ^= (byte)(1 << (int)(edit.Value % 8));
                break;
            case Mutation.Truncate or Mutation.TruncateKeepHeader:
                bytes = bytes.AsSpan(0, where % (bytes.Length + 1)).ToArray();
                break;
            case Mutation.Extend:
                bytes = [.. bytes, .. BitConverter.GetBytes(edit.Value).AsSpan(0, where % 9)];
                break;
            case Mutation.LengthExtreme when bytes.Length >= CommandBufferFormat.HeaderSize:
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(CommandBufferFormat.TotalLengthOffset), (uint)edit.Value);
                return bytes; // the header's own length field is the mutation
            case Mutation.CommandSizeExtreme when commands.Count > 0:
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(commands[where % commands.Count].Offset + CommandBufferFormat.CommandSizeOffset), (uint)edit.Value);
                break;
            case Mutation.CountExtreme when bytes.Length >= CommandBufferFormat.HeaderSize:
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(CommandBufferFormat.CountOffset), (uint)edit.Value);
                break;
            case Mutation.Duplicate when commands.Count > 0:
                {
                    var (offset, size) = commands[where % commands.Count];
                    bytes = [.. bytes.AsSpan(0, offset + size), .. bytes.AsSpan(offset, size), .. bytes.AsSpan(offset + size)];
                    if (edit.Value % 2 == 0) SetCount(bytes, 1);
                    break;
                }
            case Mutation.Remove when commands.Count > 0:
                {
                    var (offset, size) = commands[where % commands.Count];
                    bytes = [.. bytes.AsSpan(0, offset), .. bytes.AsSpan(offset + size)];
                    if (edit.Value % 2 == 0) SetCount(bytes, -1);
                    break;
                }
            case Mutation.Field16 when bytes.Length >= 2:
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(where % (bytes.Length / 2) * 2), (ushort)edit.Value);
                break;
            case Mutation.Field32 when bytes.Length >= 4:
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(where % (bytes.Length / 4) * 4), (uint)edit.Value);
                break;
            case Mutation.Field64 when bytes.Length >= 8:
                BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(where % (bytes.Length / 8) * 8), edit.Value);
                break;
        }
        // Most mutations keep the header's length right, so that the command parser judges them, not the length check.
        if ((edit.FixHeader || edit.Kind == Mutation.TruncateKeepHeader) && bytes.Length >= CommandBufferFormat.HeaderSize)
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(CommandBufferFormat.TotalLengthOffset), (uint)bytes.Length);
        return bytes;
    }

    [Fact]
    public async Task Random_and_mutated_buffers_decode_to_a_program_that_reencodes_or_to_a_refusal_never_an_exception()
    {
        var reference = new CommandBufferBuilder().Fill(0x1000, 64, 7).Checksum(0x2000, 0x1000, 64).SignalFence(1).Build();
        var referenceProgram = CommandBuffers.Encode(Decode(reference).Program!);
        int accepted = 0, refused = 0, einval = 0, eoverflow = 0;
        var clock = Stopwatch.StartNew();

        // Bounded in count (iter) and, through WaitAsync, in time: a decoder that loops forever fails the test instead of hanging it.
        await Task.Run(() => Buffers.Sample(bytes =>
        {
            var (program, error) = Decode(bytes);
            if (program is not null)
            {
                Assert.Null(error);
                Assert.Equal(Convert.ToHexString(bytes), Convert.ToHexString(CommandBuffers.Encode(program)));
                Interlocked.Increment(ref accepted);
                return;
            }
            Assert.NotNull(error);
            Assert.True(error.Code is ErrorCode.EINVAL or ErrorCode.EOVERFLOW, $"unexpected code in {error}");
            Assert.False(string.IsNullOrWhiteSpace(error.Message), "a refusal without a sentence");
            if (error.Code == ErrorCode.EINVAL) Interlocked.Increment(ref einval);
            else Interlocked.Increment(ref eoverflow);
            Interlocked.Increment(ref refused);
            // A refusal leaves nothing behind: the same buffer is refused with the same sentence, a valid one still decodes.
            Assert.Equal(error, Decode(bytes).Error);
            Assert.Equal(referenceProgram, CommandBuffers.Encode(Decode(reference).Program!));
        }, iter: Iterations, writeLine: output.WriteLine)).WaitAsync(Budget * 3);

        output.WriteLine($"{accepted} accepted, {refused} refused ({einval} EINVAL, {eoverflow} EOVERFLOW) in {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(clock.Elapsed < Budget, $"{Iterations} buffers took {clock.Elapsed.TotalSeconds:0.0} s, over the budget of {Budget.TotalSeconds} s");
        Assert.Equal(Iterations, accepted + refused);
        Assert.True(accepted > Iterations / 50, $"only {accepted} accepted: the generator no longer reaches valid programs");
        Assert.True(refused > Iterations / 2, $"only {refused} refused");
        Assert.True(einval > 0 && eoverflow > 0, $"EINVAL {einval}, EOVERFLOW {eoverflow}: a refusal kind is no longer reached");
    }

    private static (DecodedProgram? Program, FabricError? Error) Decode(byte[] bytes)
    {
        // An exception escaping here fails the sample, and CsCheck prints the seed and the (shrunk) buffer.
        var ok = CommandDecoder.TryDecode(bytes, InFences, OutFences, out var program, out var error);
        Assert.Equal(ok, program is not null);
        return (program, error);
    }
}
