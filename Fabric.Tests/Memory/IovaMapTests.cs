using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Tests.Memory;

public class IovaMapTests
{
    private const ulong P = 0x1000;
    private const string Space = "address space as-3 of ctx-2";

    private static IovaMap<string> NewMap(ulong limit = 1UL << 48) => new(Space, P, limit);

    private static ulong Map(IovaMap<string> map, ulong? iova, ulong length, Access access = Access.ReadWrite, string value = "v")
    {
        Assert.True(map.TryMap(iova, length, access, value, out ulong at, out FabricError? error), error?.ToString());
        Assert.Null(error);
        return at;
    }

    private static FabricError MapFails(IovaMap<string> map, ulong? iova, ulong length, Access access = Access.ReadWrite)
    {
        Assert.False(map.TryMap(iova, length, access, "x", out ulong at, out FabricError? error));
        Assert.Equal(0UL, at);
        Assert.NotNull(error);
        Assert.Contains(Space, error.Message);
        return error;
    }

    private static FabricError UnmapFails(IovaMap<string> map, ulong iova, ulong length, Func<IovaMapping<string>, FabricError?>? veto = null)
    {
        Assert.False(map.TryUnmap(iova, length, out ulong bytes, out var removed, out FabricError? error, veto));
        Assert.Equal(0UL, bytes);
        Assert.Empty(removed);
        Assert.NotNull(error);
        return error;
    }

    private static FabricError ResolveFails(IovaMap<string> map, ulong iova, ulong length, Access needed)
    {
        Assert.False(map.TryResolve(iova, length, needed, out var mapping, out ulong offset, out FabricError? error));
        Assert.Null(mapping);
        Assert.Equal(0UL, offset);
        Assert.NotNull(error);
        Assert.Contains(Space, error.Message);
        return error;
    }

    private static (ulong Iova, ulong Length)[] Ranges(IovaMap<string> map) => map.Mappings.Select(m => (m.Iova, m.Length)).ToArray();

    // ---- map ----

    [Fact]
    public void Fixed_map_records_the_mapping_and_its_bytes()
    {
        var map = NewMap();
        ulong at = Map(map, 0x5000, 2 * P, Access.Read, "buf");
        Assert.Equal(0x5000UL, at);
        Assert.Equal(new IovaMapping<string>(0x5000, 2 * P, Access.Read, "buf"), Assert.Single(map.Mappings));
        Assert.Equal(2 * P, map.MappedBytes);
        Assert.Equal(1, map.Count);
    }

    [Fact]
    public void Map_of_zero_length_fails_with_EINVAL()
    {
        Assert.Equal(ErrorCode.EINVAL, MapFails(NewMap(), 0x1000, 0).Code);
        Assert.Equal(ErrorCode.EINVAL, MapFails(NewMap(), null, 0).Code);
    }

    [Theory]
    [InlineData(Access.None)]
    [InlineData((Access)4)]
    public void Map_without_read_or_write_fails_with_EINVAL(Access access)
    {
        var map = NewMap();
        Assert.Equal(ErrorCode.EINVAL, MapFails(map, 0x1000, P, access).Code);
        Assert.Equal(ErrorCode.EINVAL, MapFails(map, null, P, access).Code);
        Assert.Equal(0, map.Count);
    }

    [Fact]
    public void Map_with_a_length_that_is_not_a_multiple_of_the_page_fails_with_EINVAL()
    {
        FabricError error = MapFails(NewMap(), 0x1000, P + 1);
        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Contains("[0x1000, 0x2001)", error.Message);
        Assert.Equal(ErrorCode.EINVAL, MapFails(NewMap(), null, P / 2).Code);
    }

    [Fact]
    public void Map_at_a_fixed_iova_that_is_not_page_aligned_fails_with_EINVAL()
    {
        Assert.Equal(ErrorCode.EINVAL, MapFails(NewMap(), 0x1800, P).Code);
    }

    [Fact]
    public void Map_that_wraps_past_2_64_fails_with_EOVERFLOW()
    {
        var map = new IovaMap<string>(Space, P, ulong.MaxValue);
        FabricError error = MapFails(map, ulong.MaxValue - P + 1, 2 * P);
        Assert.Equal(ErrorCode.EOVERFLOW, error.Code);
        Assert.Contains("[0xfffffffffffff000, 0x10000000000001000)", error.Message);
    }

    [Fact]
    public void Map_past_the_limit_fails_with_EOVERFLOW_and_a_map_ending_at_the_limit_succeeds()
    {
        var map = NewMap(limit: 0x10000);
        Assert.Equal(ErrorCode.EOVERFLOW, MapFails(map, 0xF000, 2 * P).Code);
        Assert.Equal(ErrorCode.EOVERFLOW, MapFails(map, 0x10000, P).Code);
        Assert.Equal(0xF000UL, Map(map, 0xF000, P));
    }

    [Fact]
    public void Map_over_a_live_mapping_fails_with_EEXIST_and_keeps_the_live_mapping()
    {
        var map = NewMap();
        Map(map, 0x3000, 2 * P, Access.Read, "old");

        FabricError error = MapFails(map, 0x2000, 2 * P);

        Assert.Equal(ErrorCode.EEXIST, error.Code);
        Assert.Equal($"cannot map [0x2000, 0x4000) in {Space}: it overlaps the mapping [0x3000, 0x5000)", error.Message);
        Assert.Equal(new IovaMapping<string>(0x3000, 2 * P, Access.Read, "old"), Assert.Single(map.Mappings));
    }

    [Fact]
    public void Map_that_covers_several_live_mappings_names_the_lowest()
    {
        var map = NewMap();
        Map(map, 0x4000, P);
        Map(map, 0x8000, P);
        FabricError error = MapFails(map, 0x1000, 0x10 * P);
        Assert.Equal(ErrorCode.EEXIST, error.Code);
        Assert.EndsWith("the mapping [0x4000, 0x5000)", error.Message);
    }

    [Fact]
    public void Fixed_maps_may_touch_their_neighbours_and_use_iova_0()
    {
        var map = NewMap();
        Map(map, 0x2000, P);
        Map(map, 0x0, 2 * P);
        Map(map, 0x3000, P);
        Assert.Equal([(0UL, 2 * P), (0x2000UL, P), (0x3000UL, P)], Ranges(map));
        Assert.Equal(4 * P, map.MappedBytes);
    }

    [Fact]
    public void Auto_map_never_hands_out_iova_0()
    {
        var map = NewMap();
        Assert.Equal(P, Map(map, null, P));
        Assert.Equal(2 * P, Map(map, null, P));
    }

    [Fact]
    public void Auto_map_aligns_to_the_length_rounded_up_to_a_power_of_two()
    {
        var map = NewMap();
        Assert.Equal(0x4000UL, Map(map, null, 3 * P));  // 3 pages → 4-page alignment
        Assert.Equal(0x1000UL, Map(map, null, P));
        Assert.Equal(0x8000UL, Map(map, null, 4 * P));
        Assert.Equal(0x2000UL, Map(map, null, 2 * P));
        Assert.Equal(0x10000UL, Map(map, null, 5 * P)); // 8-page alignment, first free 8-page slot
    }

    [Fact]
    public void Auto_map_takes_the_lowest_hole_that_fits()
    {
        var map = NewMap();
        Map(map, 0x1000, P);
        Map(map, 0x3000, P);
        Map(map, 0x5000, P);
        Assert.Equal(0x2000UL, Map(map, null, P));
        Assert.Equal(0x6000UL, Map(map, null, 2 * P)); // 0x4000 is free but only one page long
    }

    [Fact]
    public void Auto_map_with_no_free_range_fails_with_ENOSPC()
    {
        var map = NewMap(limit: 0x8000);
        Assert.Equal(0x4000UL, Map(map, null, 4 * P));
        FabricError error = MapFails(map, null, 4 * P); // the only other 4-page slot starts at 0
        Assert.Equal(ErrorCode.ENOSPC, error.Code);
        Assert.Equal(ErrorCode.ENOSPC, MapFails(map, null, 0x10 * P).Code);
        Assert.Equal(ErrorCode.ENOSPC, MapFails(new IovaMap<string>(Space, P, ulong.MaxValue), null, (1UL << 63) + P).Code);
        Assert.Equal(0x1000UL, Map(map, null, P));
    }

    // ---- unmap ----

    [Fact]
    public void Unmap_of_exactly_one_mapping_removes_it_and_reports_it()
    {
        var map = NewMap();
        Map(map, 0x2000, 2 * P, Access.Read, "a");
        Assert.True(map.TryUnmap(0x2000, 2 * P, out ulong bytes, out var removed, out FabricError? error));
        Assert.Null(error);
        Assert.Equal(2 * P, bytes);
        Assert.Equal(new IovaMapping<string>(0x2000, 2 * P, Access.Read, "a"), Assert.Single(removed));
        Assert.Equal(0, map.Count);
        Assert.Equal(0UL, map.MappedBytes);
    }

    [Fact]
    public void Unmap_that_would_split_a_mapping_fails_with_ENOENT_and_changes_nothing()
    {
        var map = NewMap();
        Map(map, 0x2000, 4 * P);
        Map(map, 0x8000, P);

        FabricError error = UnmapFails(map, 0x3000, 0x6000);

        Assert.Equal(ErrorCode.ENOENT, error.Code);
        Assert.Equal($"cannot unmap [0x3000, 0x9000) in {Space}: it would split the mapping [0x2000, 0x6000)", error.Message);
        Assert.Equal([(0x2000UL, 4 * P), (0x8000UL, P)], Ranges(map));
        Assert.Equal(5 * P, map.MappedBytes);
    }

    [Fact]
    public void Unmap_that_would_truncate_a_mapping_fails_with_ENOENT_and_changes_nothing()
    {
        var map = NewMap();
        Map(map, 0x1000, P);
        Map(map, 0x4000, 4 * P);

        FabricError error = UnmapFails(map, 0x1000, 0x4000); // holds [0x1000, 0x2000) but cuts [0x4000, 0x8000)

        Assert.Equal(ErrorCode.ENOENT, error.Code);
        Assert.Contains("truncate the mapping [0x4000, 0x8000)", error.Message);
        Assert.Equal([(0x1000UL, P), (0x4000UL, 4 * P)], Ranges(map));
    }

    [Fact]
    public void Unmap_of_a_range_with_mappings_and_holes_reports_only_the_mapped_bytes()
    {
        var map = NewMap();
        Map(map, 0x2000, P, value: "a");
        Map(map, 0x5000, 2 * P, value: "b");
        Map(map, 0x9000, P, value: "c");

        Assert.True(map.TryUnmap(0x1000, 0x8000, out ulong bytes, out var removed, out FabricError? error));

        Assert.Null(error);
        Assert.Equal(3 * P, bytes);
        Assert.Equal(["a", "b"], removed.Select(m => m.Value));
        Assert.Equal([(0x9000UL, P)], Ranges(map));
        Assert.Equal(P, map.MappedBytes);
    }

    [Fact]
    public void Unmap_of_a_range_holding_only_holes_fails_with_ENOENT()
    {
        var map = NewMap();
        Map(map, 0x2000, P);
        FabricError error = UnmapFails(map, 0x4000, 4 * P);
        Assert.Equal(ErrorCode.ENOENT, error.Code);
        Assert.Contains("[0x4000, 0x8000)", error.Message);
        Assert.Equal(ErrorCode.ENOENT, UnmapFails(NewMap(), 0x1000, P).Code);
    }

    [Fact]
    public void Unmap_of_zero_length_fails_with_EINVAL()
    {
        var map = NewMap();
        Map(map, 0x1000, P);
        Assert.Equal(ErrorCode.EINVAL, UnmapFails(map, 0x1000, 0).Code);
        Assert.Equal(1, map.Count);
    }

    [Fact]
    public void Unmap_that_wraps_past_2_64_fails_with_EOVERFLOW()
    {
        Assert.Equal(ErrorCode.EOVERFLOW, UnmapFails(NewMap(), 0x1000, ulong.MaxValue).Code);
        Assert.Equal(ErrorCode.EOVERFLOW, UnmapFails(NewMap(), ulong.MaxValue, 2).Code);
    }

    [Fact]
    public void Unmap_of_0_and_ulong_MaxValue_removes_every_mapping()
    {
        var map = NewMap();
        Map(map, 0, P, value: "a");
        Map(map, null, 2 * P, value: "b");
        Map(map, 0x7FFF_0000_0000, P, value: "c");

        Assert.True(map.TryUnmap(0, ulong.MaxValue, out ulong bytes, out var removed, out FabricError? error));

        Assert.Null(error);
        Assert.Equal(4 * P, bytes);
        Assert.Equal(["a", "b", "c"], removed.Select(m => m.Value));
        Assert.Empty(map.Mappings);
        Assert.Equal(0UL, map.MappedBytes);
    }

    [Fact]
    public void Unmap_of_0_and_ulong_MaxValue_succeeds_on_an_empty_space()
    {
        Assert.True(NewMap().TryUnmap(0, ulong.MaxValue, out ulong bytes, out var removed, out FabricError? error));
        Assert.Null(error);
        Assert.Equal(0UL, bytes);
        Assert.Empty(removed);
    }

    [Fact]
    public void Unmap_refused_by_the_veto_returns_its_error_and_changes_nothing()
    {
        var map = NewMap();
        Map(map, 0x1000, P, value: "plain");
        Map(map, 0x2000, P, value: "exported");
        var busy = new FabricError(ErrorCode.EBUSY, "the mapping [0x2000, 0x3000) is exported as dmabuf-7");
        var seen = new List<string>();
        FabricError? Veto(IovaMapping<string> m)
        {
            seen.Add(m.Value);
            return m.Value == "exported" ? busy : null;
        }

        Assert.Same(busy, UnmapFails(map, 0x1000, 2 * P, Veto));
        Assert.Same(busy, UnmapFails(map, 0, ulong.MaxValue, Veto));
        Assert.Equal(["plain", "exported", "plain", "exported"], seen);
        Assert.Equal(2, map.Count);

        Assert.True(map.TryUnmap(0x1000, P, out ulong bytes, out _, out _, Veto));
        Assert.Equal(P, bytes);
    }

    [Fact]
    public void A_split_is_reported_before_the_veto_is_asked()
    {
        var map = NewMap();
        Map(map, 0x1000, 2 * P);
        int asked = 0;
        FabricError error = UnmapFails(map, 0x2000, P, _ => { asked++; return new FabricError(ErrorCode.EBUSY, "busy"); });
        Assert.Equal(ErrorCode.ENOENT, error.Code);
        Assert.Equal(0, asked);
    }

    [Fact]
    public void An_unmapped_range_can_be_mapped_again()
    {
        var map = NewMap();
        ulong at = Map(map, null, 2 * P);
        Assert.True(map.TryUnmap(at, 2 * P, out _, out _, out _));
        Assert.Equal(at, Map(map, null, 2 * P));
        Assert.Equal(ErrorCode.EEXIST, MapFails(map, at, P).Code);
    }

    // ---- resolve ----

    [Fact]
    public void Resolve_finds_the_mapping_and_the_offset_at_any_byte()
    {
        var map = NewMap();
        Map(map, 0x4000, 2 * P, Access.ReadWrite, "buf");
        Assert.True(map.TryResolve(0x4001, 0x1FFF, Access.ReadWrite, out var m, out ulong offset, out FabricError? error));
        Assert.Null(error);
        Assert.Equal("buf", m!.Value);
        Assert.Equal(1UL, offset);
        Assert.True(map.TryResolve(0x5FFF, 1, Access.Read, out _, out offset, out _));
        Assert.Equal(0x1FFFUL, offset);
    }

    [Fact]
    public void Resolve_of_an_unmapped_start_fails_with_ENOENT()
    {
        var map = NewMap();
        Map(map, 0x4000, P);
        FabricError error = ResolveFails(map, 0x3FFF, 2, Access.Read);
        Assert.Equal(ErrorCode.ENOENT, error.Code);
        Assert.Contains("0x3fff is not mapped", error.Message);
        Assert.Equal(ErrorCode.ENOENT, ResolveFails(map, 0x5000, 1, Access.Read).Code);
        Assert.Equal(ErrorCode.ENOENT, ResolveFails(NewMap(), 0, 1, Access.Read).Code);
    }

    [Fact]
    public void Resolve_running_past_the_end_of_its_mapping_fails_with_ENOENT_even_into_an_adjacent_mapping()
    {
        var map = NewMap();
        Map(map, 0x4000, P);
        Map(map, 0x5000, P);
        FabricError error = ResolveFails(map, 0x4FF0, 0x20, Access.Read);
        Assert.Equal(ErrorCode.ENOENT, error.Code);
        Assert.Contains("past the end of the mapping [0x4000, 0x5000)", error.Message);
    }

    [Fact]
    public void Resolve_needing_write_on_a_read_only_mapping_fails_with_EPERM()
    {
        var map = NewMap();
        Map(map, 0x4000, P, Access.Read);
        FabricError error = ResolveFails(map, 0x4000, 8, Access.Write);
        Assert.Equal(ErrorCode.EPERM, error.Code);
        Assert.Contains("[0x4000, 0x5000) is read-only", error.Message);
        Assert.True(map.TryResolve(0x4000, 8, Access.Read, out _, out _, out _));
    }

    [Fact]
    public void Resolve_needing_read_on_a_write_only_mapping_fails_with_EPERM()
    {
        var map = NewMap();
        Map(map, 0x4000, P, Access.Write);
        Assert.Equal(ErrorCode.EPERM, ResolveFails(map, 0x4000, 8, Access.Read).Code);
        Assert.Equal(ErrorCode.EPERM, ResolveFails(map, 0x4000, 8, Access.ReadWrite).Code);
        Assert.True(map.TryResolve(0x4000, 8, Access.Write, out _, out _, out _));
    }

    [Fact]
    public void Resolve_of_zero_length_fails_with_EINVAL_and_a_wrapping_range_with_EOVERFLOW()
    {
        var map = NewMap();
        Map(map, 0x4000, P);
        Assert.Equal(ErrorCode.EINVAL, ResolveFails(map, 0x4000, 0, Access.Read).Code);
        Assert.Equal(ErrorCode.EOVERFLOW, ResolveFails(map, 0x4000, ulong.MaxValue, Access.Read).Code);
    }

    [Fact]
    public void Mappings_are_listed_in_iova_order_with_their_total()
    {
        var map = NewMap();
        Map(map, 0x9000, P);
        Map(map, 0x1000, 3 * P);
        Map(map, null, 2 * P);
        Assert.Equal([(0x1000UL, 3 * P), (0x4000UL, 2 * P), (0x9000UL, P)], Ranges(map));
        Assert.Equal(6 * P, map.MappedBytes);
        Assert.Equal(3, map.Count);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(3000UL)]
    public void The_page_size_must_be_a_power_of_two(ulong pageSize)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IovaMap<int>(Space, pageSize));
    }
}
