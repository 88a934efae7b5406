using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Fabric.Core.Commands;
using Fabric.Devices.Internal.Commands;

namespace Fabric.Tests.Commands;

public sealed class KernelExecutorTests
{
    private const ulong Base = 0x10_0000;
    private const int ViewSize = 1 << 16;

    /// <summary>Chunk sizes: the production default and tiny ones that force many chunk boundaries.</summary>
    public static TheoryData<ulong> Chunks => new() { KernelExecutor.DefaultChunkBytes, 64, 192 };

    // ---- scalar host references, written independently of the kernels --------------------------------------------

    private static uint ReferenceCrc32C(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var bit = 0; bit < 8; bit++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }

    private static void AssertClose(double expected, float actual, double scale)
    {
        var tolerance = 1e-5 * Math.Max(Math.Abs(expected), Math.Max(scale, 1e-30));
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"expected {expected}, got {actual} (tolerance {tolerance})");
    }

    private static float[] RandomFloats(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 200 - 100)).ToArray();

    /// <summary>Decodes a buffer built by <paramref name="build"/> and runs every command of it.</summary>
    private static void Run(PinnedMemoryView view, Action<CommandBufferBuilder> build, ulong chunk = KernelExecutor.DefaultChunkBytes)
    {
        var builder = new CommandBufferBuilder();
        build(builder);
        Assert.True(CommandDecoder.TryDecode(builder.Build(), 0, 0, out var program, out var error), error?.ToString());
        foreach (var command in program.Commands)
            KernelExecutor.Execute(command, view, CancellationToken.None, chunk);
    }

    /// <summary>Asserts every byte outside [offset, offset + length) kept its value from <paramref name="before"/>.</summary>
    private static void AssertUntouchedOutside(byte[] before, byte[] after, int offset, int length)
    {
        Assert.True(before.AsSpan(0, offset).SequenceEqual(after.AsSpan(0, offset)), "bytes before the destination changed");
        Assert.True(before.AsSpan(offset + length).SequenceEqual(after.AsSpan(offset + length)), "bytes after the destination changed");
    }

    // ---- FILL ----------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(0x11, 1ul, 0x44332211u)]
    [InlineData(0x13, 2ul, 0x44332211u)]
    [InlineData(0x25, 3ul, 0xA0B0C0D0u)]
    [InlineData(0x101, 7ul, 0x04030201u)]
    [InlineData(0x3, 1001ul, 0xDEADBEEFu)]
    [InlineData(0x7, 4099ul, 0x00FF00FFu)]
    [InlineData(0x0, 4096ul, 0x5A5A5A5Au)]
    public void Fill_repeats_the_little_endian_pattern_and_cuts_the_tail(int offset, ulong length, uint pattern)
    {
        foreach (var chunk in new ulong[] { KernelExecutor.DefaultChunkBytes, 64 })
        {
            var view = new PinnedMemoryView(Base, ViewSize);
            var before = view.Bytes.ToArray();
            Run(view, b => b.Fill(Base + (ulong)offset, length, pattern), chunk);

            var expected = new byte[length];
            for (var i = 0; i < expected.Length; i++)
                expected[i] = (byte)(pattern >> (8 * (i % 4)));
            Assert.Equal(expected, view.Bytes.AsSpan(offset, (int)length).ToArray());
            AssertUntouchedOutside(before, view.Bytes, offset, (int)length);
        }
    }

    [Fact]
    public void Fill_writes_bytes_in_pattern_order_11_22_33_44()
    {
        var view = new PinnedMemoryView(Base, 64);
        Run(view, b => b.Fill(Base + 1, 6, 0x44332211));
        Assert.Equal(new byte[] { 0x11, 0x22, 0x33, 0x44, 0x11, 0x22 }, view.Bytes.AsSpan(1, 6).ToArray());
    }

    /// <summary>Touches 2 GiB of fresh memory (about 1 s on bare metal, ~10 s in a Firecracker VM where first touch is
    /// slow); filter it out with <c>--filter Category!=Large</c> when iterating.</summary>
    [Fact]
    [Trait("Category", "Large")]
    public unsafe void Fill_handles_a_range_larger_than_int_MaxValue()
    {
        const ulong length = (1UL << 31) + 4103;
        const uint pattern = 0x89ABCDEF;
        using var view = new NativeMemoryView(Base, length + 64);
        new Span<byte>(view.Base, 64).Fill(0xEE);
        new Span<byte>(view.Base + 32 + length, 32).Fill(0xEE);

        KernelExecutor.Execute(new FillCommand(0, 16, Base + 32, length, pattern), view, CancellationToken.None);

        var words = length / 8;
        var expectedWord = pattern | ((ulong)pattern << 32);
        var start = (ulong*)(view.Base + 32);
        for (ulong done = 0; done < words; done += 1UL << 28)
        {
            var span = new ReadOnlySpan<ulong>(start + done, (int)Math.Min(1UL << 28, words - done));
            Assert.Equal(-1, span.IndexOfAnyExcept(expectedWord));
        }
        for (var i = words * 8; i < length; i++)
            Assert.Equal((byte)(pattern >> (int)(8 * (i % 4))), view.Base[32 + i]);
        Assert.Equal(-1, new ReadOnlySpan<byte>(view.Base, 32).IndexOfAnyExcept((byte)0xEE));
        Assert.Equal(-1, new ReadOnlySpan<byte>(view.Base + 32 + length, 32).IndexOfAnyExcept((byte)0xEE));
    }

    // ---- COPY ----------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(0x1001, 0x3003, 1)]
    [InlineData(0x1001, 0x3003, 4099)]        // disjoint, odd offsets
    [InlineData(0x1000, 0x1005, 3001)]        // overlap, dst below src (forward)
    [InlineData(0x1005, 0x1000, 3001)]        // overlap, dst above src (backward)
    [InlineData(0x1001, 0x1000, 777)]         // overlap by all but one byte, backward
    [InlineData(0x1000, 0x1000, 100)]         // dst == src
    public void Copy_moves_bytes_like_memmove(int dstOffset, int srcOffset, int length)
    {
        foreach (var chunk in new ulong[] { KernelExecutor.DefaultChunkBytes, 64, 192 })
        {
            var view = new PinnedMemoryView(Base, ViewSize, seed: dstOffset ^ length);
            var before = view.Bytes.ToArray();
            Run(view, b => b.Copy(Base + (ulong)dstOffset, Base + (ulong)srcOffset, (ulong)length), chunk);

            var expected = before.AsSpan(srcOffset, length).ToArray();
            Assert.Equal(expected, view.Bytes.AsSpan(dstOffset, length).ToArray());
            AssertUntouchedOutside(before, view.Bytes, dstOffset, length);
        }
    }

    // ---- element-wise float32 ------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(Chunks))]
    public void Add_sums_elementwise(ulong chunk)
    {
        foreach (var count in new[] { 1, 3, 8, 17, 1003 })
        {
            var random = new Random(count);
            var view = new PinnedMemoryView(Base, ViewSize);
            ulong dst = Base + 0x4, a = Base + 0x400c, b = Base + 0x8014;
            var av = RandomFloats(random, count);
            var bv = RandomFloats(random, count);
            view.WriteFloats(a, av);
            view.WriteFloats(b, bv);
            var before = view.Bytes.ToArray();

            Run(view, x => x.Add(dst, a, b, (ulong)count), chunk);

            var actual = view.ReadFloats(dst, count);
            for (var i = 0; i < count; i++)
                AssertClose((double)av[i] + bv[i], actual[i], Math.Abs(av[i]) + Math.Abs(bv[i]));
            AssertUntouchedOutside(before, view.Bytes, view.OffsetOf(dst), 4 * count);
        }
    }

    [Fact]
    public void Add_works_in_place_when_dst_is_an_input()
    {
        var view = new PinnedMemoryView(Base, ViewSize);
        var av = RandomFloats(new Random(5), 37);
        var bv = RandomFloats(new Random(6), 37);
        view.WriteFloats(Base, av);
        view.WriteFloats(Base + 0x1000, bv);

        Run(view, x => x.Add(Base, Base, Base + 0x1000, 37));

        var actual = view.ReadFloats(Base, 37);
        for (var i = 0; i < 37; i++)
            AssertClose((double)av[i] + bv[i], actual[i], Math.Abs(av[i]) + Math.Abs(bv[i]));
    }

    [Theory]
    [MemberData(nameof(Chunks))]
    public void Scale_multiplies_every_element_by_alpha(ulong chunk)
    {
        foreach (var count in new[] { 1, 5, 16, 33, 2049 })
        {
            var view = new PinnedMemoryView(Base, ViewSize);
            ulong dst = Base + 0x24, src = Base + 0x6004;
            var sv = RandomFloats(new Random(count), count);
            view.WriteFloats(src, sv);
            var before = view.Bytes.ToArray();

            Run(view, x => x.Scale(dst, src, (ulong)count, -2.75f), chunk);

            var actual = view.ReadFloats(dst, count);
            for (var i = 0; i < count; i++)
                AssertClose(-2.75 * sv[i], actual[i], 2.75 * Math.Abs(sv[i]));
            AssertUntouchedOutside(before, view.Bytes, view.OffsetOf(dst), 4 * count);
        }
    }

    [Theory]
    [MemberData(nameof(Chunks))]
    public void Axpy_adds_alpha_times_x_to_y(ulong chunk)
    {
        foreach (var count in new[] { 1, 7, 24, 65, 1500 })
        {
            var view = new PinnedMemoryView(Base, ViewSize);
            ulong y = Base + 0x104, x = Base + 0x5008;
            var random = new Random(count);
            var yv = RandomFloats(random, count);
            var xv = RandomFloats(random, count);
            view.WriteFloats(y, yv);
            view.WriteFloats(x, xv);
            var before = view.Bytes.ToArray();

            Run(view, b => b.Axpy(y, x, (ulong)count, 0.5f), chunk);

            var actual = view.ReadFloats(y, count);
            for (var i = 0; i < count; i++)
                AssertClose(0.5 * xv[i] + yv[i], actual[i], 0.5 * Math.Abs(xv[i]) + Math.Abs(yv[i]));
            Assert.Equal(xv, view.ReadFloats(x, count));
            AssertUntouchedOutside(before, view.Bytes, view.OffsetOf(y), 4 * count);
        }
    }

    // ---- MATMUL --------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 3, 4)]
    [InlineData(5, 17, 3)]
    [InlineData(16, 16, 16)]
    [InlineData(13, 9, 31)]
    [InlineData(1, 100, 7)]
    [InlineData(40, 1, 25)]
    public void MatMul_computes_row_major_C_equals_A_times_B(int m, int n, int k)
    {
        foreach (var chunk in new ulong[] { KernelExecutor.DefaultChunkBytes, 64 })
        {
            var random = new Random(m * 1000 + n * 10 + k);
            var view = new PinnedMemoryView(Base, ViewSize);
            ulong c = Base + 0x4, a = Base + 0x4004, b = Base + 0x8008;
            var av = RandomFloats(random, m * k);
            var bv = RandomFloats(random, k * n);
            view.WriteFloats(a, av);
            view.WriteFloats(b, bv);
            var before = view.Bytes.ToArray();

            Run(view, x => x.MatMul(c, a, b, (uint)m, (uint)n, (uint)k), chunk);

            var actual = view.ReadFloats(c, m * n);
            for (var i = 0; i < m; i++)
            for (var j = 0; j < n; j++)
            {
                double sum = 0, magnitude = 0;
                for (var p = 0; p < k; p++)
                {
                    sum += (double)av[i * k + p] * bv[p * n + j];
                    magnitude += Math.Abs((double)av[i * k + p] * bv[p * n + j]);
                }
                AssertClose(sum, actual[i * n + j], magnitude);
            }
            AssertUntouchedOutside(before, view.Bytes, view.OffsetOf(c), 4 * m * n);
        }
    }

    [Fact]
    public void MatMul_of_identity_returns_the_other_matrix_exactly()
    {
        var view = new PinnedMemoryView(Base, ViewSize);
        const int size = 6;
        var identity = new float[size * size];
        for (var i = 0; i < size; i++)
            identity[i * size + i] = 1;
        var bv = RandomFloats(new Random(3), size * size);
        view.WriteFloats(Base + 0x1000, identity);
        view.WriteFloats(Base + 0x2000, bv);

        Run(view, x => x.MatMul(Base, Base + 0x1000, Base + 0x2000, size, size, size));

        Assert.Equal(bv, view.ReadFloats(Base, size * size));
    }

    // ---- REDUCE_SUM ----------------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(Chunks))]
    public void ReduceSum_adds_all_elements_into_one_float(ulong chunk)
    {
        foreach (var count in new[] { 1, 2, 9, 31, 4095 })
        {
            var view = new PinnedMemoryView(Base, ViewSize);
            ulong dst = Base + 0x3c, src = Base + 0x1004;
            var sv = RandomFloats(new Random(count), count);
            view.WriteFloats(src, sv);
            var before = view.Bytes.ToArray();

            Run(view, x => x.ReduceSum(dst, src, (ulong)count), chunk);

            double expected = 0, magnitude = 0;
            foreach (var v in sv)
            {
                expected += v;
                magnitude += Math.Abs(v);
            }
            AssertClose(expected, view.ReadFloats(dst, 1)[0], magnitude);
            AssertUntouchedOutside(before, view.Bytes, view.OffsetOf(dst), 4);
        }
    }

    [Fact]
    public void ReduceSum_accumulates_in_double_so_small_terms_are_not_lost()
    {
        // In float32, 2^24 + 1 + 1 + ... stays 2^24; a double accumulator keeps every 1.
        var view = new PinnedMemoryView(Base, ViewSize);
        var values = new float[1001];
        values[0] = 16_777_216f;
        for (var i = 1; i < values.Length; i++)
            values[i] = 1f;
        view.WriteFloats(Base + 0x100, values);

        Run(view, x => x.ReduceSum(Base, Base + 0x100, (ulong)values.Length));

        Assert.Equal(16_778_216f, view.ReadFloats(Base, 1)[0]);
    }

    // ---- CHECKSUM ------------------------------------------------------------------------------------------------

    [Fact]
    public void Checksum_of_123456789_is_the_CRC32C_check_value()
    {
        Assert.Equal(0xE3069283u, ReferenceCrc32C("123456789"u8));
        var view = new PinnedMemoryView(Base, 256);
        Encoding.ASCII.GetBytes("123456789").CopyTo(view.Bytes, 0x21);

        Run(view, x => x.Checksum(Base + 0x80, Base + 0x21, 9));

        Assert.Equal(0xE3069283u, BinaryPrimitives.ReadUInt32LittleEndian(view.Bytes.AsSpan(0x80)));
    }

    [Theory]
    [MemberData(nameof(Chunks))]
    public void Checksum_matches_a_bytewise_CRC32C_reference(ulong chunk)
    {
        foreach (var (offset, length) in new[] { (0x101, 1), (0x103, 7), (0x100, 8), (0x105, 31), (0x107, 33), (0x1001, 20001) })
        {
            var view = new PinnedMemoryView(Base, ViewSize, seed: length);
            var before = view.Bytes.ToArray();

            Run(view, x => x.Checksum(Base + 0x10, Base + (ulong)offset, (ulong)length), chunk);

            Assert.Equal(ReferenceCrc32C(before.AsSpan(offset, length)), BinaryPrimitives.ReadUInt32LittleEndian(view.Bytes.AsSpan(0x10)));
            AssertUntouchedOutside(before, view.Bytes, 0x10, 4);
        }
    }

    // ---- fences and cancellation ---------------------------------------------------------------------------------

    [Fact]
    public void Fence_commands_are_refused_by_the_kernel_executor()
    {
        var view = new PinnedMemoryView(Base, 64);
        var signal = Assert.Throws<InvalidOperationException>(() =>
            KernelExecutor.Execute(new SignalFenceCommand(2, 48, 0), view, CancellationToken.None));
        Assert.Contains("command #2 (SIGNAL_FENCE) at byte 48", signal.Message);
        Assert.Throws<InvalidOperationException>(() =>
            KernelExecutor.Execute(new WaitFenceCommand(0, 16, 0, 0), view, CancellationToken.None));
        Assert.Empty(view.Translations);
    }

    [Fact]
    public void A_cancelled_token_stops_a_command_before_it_writes()
    {
        var view = new PinnedMemoryView(Base, ViewSize);
        var before = view.Bytes.ToArray();
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Assert.ThrowsAny<OperationCanceledException>(() =>
            KernelExecutor.Execute(new FillCommand(0, 16, Base, 4096, 0x01020304), view, cts.Token));
        Assert.Equal(before, view.Bytes);
    }

    [Fact]
    public void Cancellation_is_checked_between_chunks()
    {
        // The token fires while operands are translated, i.e. after the command started: the chunk loops must notice.
        foreach (var command in new DecodedCommand[]
                 {
                     new FillCommand(0, 16, Base, 4096, 0x01020304),
                     new CopyCommand(0, 16, Base, Base + 0x2000, 4096),
                     new AddF32Command(0, 16, Base, Base + 0x2000, Base + 0x4000, 1024),
                     new ScaleF32Command(0, 16, Base, Base + 0x2000, 1024, 2f),
                     new AxpyF32Command(0, 16, Base, Base + 0x2000, 1024, 2f),
                     new MatMulF32Command(0, 16, Base, Base + 0x2000, Base + 0x4000, 16, 16, 16),
                     new ReduceSumF32Command(0, 16, Base, Base + 0x2000, 1024),
                     new ChecksumCommand(0, 16, Base, Base + 0x2000, 4096),
                 })
        {
            var view = new PinnedMemoryView(Base, ViewSize);
            using var cts = new CancellationTokenSource();
            var translations = 0;
            var operands = command.Operands.Count();
            view.OnTranslate = () =>
            {
                if (++translations == operands)
                    cts.Cancel();
            };

            Assert.ThrowsAny<OperationCanceledException>(() => KernelExecutor.Execute(command, view, cts.Token, 64));
        }
    }
}
