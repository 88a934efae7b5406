using Fabric.Devices.Internal.Memory;

namespace Fabric.Tests.Memory;

public unsafe class NativeArenaTests
{
    [Fact]
    public void Base_is_page_aligned_and_size_is_kept()
    {
        using var arena = new NativeArena(3 * 4096 + 17);
        Assert.Equal(3 * 4096 + 17, arena.Size);
        Assert.Equal(0UL, (ulong)arena.Base % 4096);
    }

    [Fact]
    public void Pointer_is_base_plus_offset_and_reads_what_was_written()
    {
        using var arena = new NativeArena(8192);
        byte* p = arena.Pointer(100, 4);
        Assert.Equal((nint)(arena.Base + 100), (nint)p);
        p[0] = 0xAB;
        p[3] = 0xCD;
        Assert.Equal(0xAB, arena.Base[100]);
        Assert.Equal(0xCD, arena.Span(100, 4)[3]);
    }

    [Fact]
    public void Pointer_of_zero_length_at_the_end_is_allowed()
    {
        using var arena = new NativeArena(4096);
        Assert.Equal((nint)(arena.Base + 4096), (nint)arena.Pointer(4096, 0));
    }

    [Theory]
    [InlineData(-1L, 1L)]
    [InlineData(0L, -1L)]
    [InlineData(4096L, 1L)]
    [InlineData(4000L, 97L)]
    [InlineData(1L, long.MaxValue)]
    [InlineData(long.MaxValue, 1L)]
    public void Pointer_outside_the_arena_throws_ArgumentOutOfRangeException(long offset, long length)
    {
        using var arena = new NativeArena(4096);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => { _ = (nint)arena.Pointer(offset, length); });
        Assert.Contains("arena", ex.Message);
    }

    [Fact]
    public void Clear_zeroes_exactly_the_range()
    {
        using var arena = new NativeArena(4096);
        arena.Span(0, 4096).Fill(0xFF);
        arena.Clear(10, 20);
        Span<byte> all = arena.Span(0, 4096);
        Assert.Equal(0xFF, all[9]);
        Assert.True(all[10..30].IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(0xFF, all[30]);
        Assert.Equal(4096 - 20, all.Count((byte)0xFF));
    }

    [Fact]
    public void Clear_outside_the_arena_throws_and_changes_nothing()
    {
        using var arena = new NativeArena(4096);
        arena.Span(0, 4096).Fill(0x11);
        Assert.Throws<ArgumentOutOfRangeException>(() => arena.Clear(4000, 200));
        Assert.Equal(4096, arena.Span(0, 4096).Count((byte)0x11));
    }

    [Fact]
    public void Clear_handles_lengths_beyond_int_MaxValue()
    {
        // Touches about 2 GiB: the only way to prove a clear longer than int.MaxValue really happens.
        long length = int.MaxValue + 8192L;
        using var arena = new NativeArena(length + 2 * 4096);
        byte* b = arena.Base;
        long start = 4096;
        long[] inside = [start, start + int.MaxValue - 1, start + int.MaxValue, start + int.MaxValue + 1, start + length - 1];
        foreach (long i in inside)
            b[i] = 0x5A;
        b[start - 1] = 0x77;
        b[start + length] = 0x66;

        arena.Clear(start, length);

        Assert.All(inside, i => Assert.Equal(0, b[i]));
        Assert.Equal(0x77, b[start - 1]);
        Assert.Equal(0x66, b[start + length]);
    }

    [Fact]
    public void A_1_GiB_arena_is_created_without_becoming_resident()
    {
        const long GiB = 1L << 30;
        long before = Environment.WorkingSet;
        using var arena = new NativeArena(GiB);
        arena.Base[0] = 1;
        arena.Base[GiB - 1] = 2;
        long grown = Environment.WorkingSet - before;

        Assert.Equal(GiB, arena.Size);
        Assert.Equal(1, *arena.Pointer(0, 1));
        Assert.Equal(2, *arena.Pointer(GiB - 1, 1));
        Assert.True(grown < GiB / 4, $"the working set grew by {grown} bytes");
    }

    [Fact]
    public void Dispose_is_idempotent_and_the_arena_is_unusable_afterwards()
    {
        var arena = new NativeArena(4096);
        arena.Dispose();
        arena.Dispose();
        Assert.True(arena.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => { _ = (nint)arena.Base; });
        Assert.Throws<ObjectDisposedException>(() => { _ = (nint)arena.Pointer(0, 1); });
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-4096L)]
    public void A_non_positive_size_is_refused(long size)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new NativeArena(size));
    }
}
