using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Devices.Internal.Memory;

namespace Fabric.Tests.Memory;

public class IovaMapTests
{
    private const ulong P = 0x1000;
    private const string Space = "address space as-3 of ctx-2";

    private static IovaMap<string> NewMap() => new(Space, P);

    // A space whose device reaches only [0, end).
    private static IovaMap<string> Limited(ulong end)
    {
        var map = NewMap();
        Assert.True(map.TryLimitAperture(end - 1, "dev-0", out FabricError? error), error?.ToString());
        return map;
    }

    private static void Succeeds(bool ok, FabricError? error)
    {
        Assert.True(ok, error?.ToString());
        Assert.Null(error);
    }

    private static FabricError Fails(bool ok, FabricError? error)
    {
        Assert.False(ok);
        Assert.NotNull(error);
        Assert.Contains(Space, error.Message);
        return error;
    }

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

    // As arrays: xunit would compare two ImmutableArrays by reference.
    private static (ulong Start, ulong Last)[] Usable(IovaMap<string> map) => [.. map.UsableRanges];

    private static (ulong Start, ulong Last)[] Allowed(IovaMap<string> map) => [.. map.AllowedRanges];

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
        var map = NewMap();
        FabricError error = MapFails(map, ulong.MaxValue - P + 1, 2 * P);
        Assert.Equal(ErrorCode.EOVERFLOW, error.Code);
        Assert.Contains("[0xfffffffffffff000, 0x10000000000001000)", error.Message);
    }

    [Fact]
    public void Map_past_the_aperture_fails_with_EINVAL_and_a_map_ending_at_its_end_succeeds()
    {
        var map = Limited(0x10000);

        FabricError error = MapFails(map, 0xF000, 2 * P);

        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Equal($"cannot map [0xf000, 0x11000) in {Space}: it touches [0x10000, 0x10000000000000000) outside the aperture of dev-0",
            error.Message);
        Assert.Equal(ErrorCode.EINVAL, MapFails(map, 0x10000, P).Code);
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
        var map = Limited(0x8000);
        Assert.Equal(0x4000UL, Map(map, null, 4 * P));
        FabricError error = MapFails(map, null, 4 * P); // the only other 4-page slot starts at 0
        Assert.Equal(ErrorCode.ENOSPC, error.Code);
        Assert.Equal(ErrorCode.ENOSPC, MapFails(map, null, 0x10 * P).Code);
        Assert.Equal(ErrorCode.ENOSPC, MapFails(NewMap(), null, (1UL << 63) + P).Code);
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
    public void Unmap_that_wraps_fails_with_EOVERFLOW_before_it_is_judged_against_the_mappings()
    {
        var map = NewMap();
        Map(map, ulong.MaxValue - 2 * P + 1, 2 * P);
        FabricError error = UnmapFails(map, ulong.MaxValue - P + 1, 2 * P); // would also split the mapping
        Assert.Equal(ErrorCode.EOVERFLOW, error.Code);
        Assert.Equal(1, map.Count);
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

    // ---- the order of map's checks ----

    [Fact]
    public void Map_judges_unknown_access_bits_before_the_length()
    {
        FabricError error = MapFails(NewMap(), 0x1000, 0, (Access)4 | Access.Read);
        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Equal($"cannot map [0x1000, 0x1000) in {Space}: unknown access bits 0x5", error.Message);
    }

    [Fact]
    public void Map_that_wraps_fails_with_EOVERFLOW_before_its_alignment_or_access_is_judged()
    {
        var map = NewMap();
        ulong top = ulong.MaxValue - P + 1;
        Assert.Equal(ErrorCode.EOVERFLOW, MapFails(map, top + 0x800, P).Code);           // IOVA off the page
        Assert.Equal(ErrorCode.EOVERFLOW, MapFails(map, top, P + 1).Code);               // length off the page
        Assert.Equal(ErrorCode.EOVERFLOW, MapFails(map, top, 2 * P, Access.None).Code);  // neither read nor write
        Assert.Equal(ErrorCode.EINVAL, MapFails(map, top, 2 * P, (Access)4).Code);       // unknown bits come first
        Assert.Equal(top, Map(map, top, P));                                             // ending at 2^64 does not wrap
    }

    [Fact]
    public void Map_that_touches_a_reserved_region_fails_with_EINVAL_naming_it_even_over_a_live_mapping()
    {
        var map = NewMap();
        Map(map, 0xFED0_0000, 0x10 * P);
        Succeeds(map.TryReserve(0xFEE0_0000, 0xFEEF_FFFF, "the MSI window of dev-1", out FabricError? reserveError), reserveError);

        FabricError error = MapFails(map, 0xFED0_0000, 0x200 * P); // overlaps the mapping too: the reservation wins

        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Equal($"cannot map [0xfed00000, 0xfef00000) in {Space}: it touches [0xfee00000, 0xfef00000) reserved by " +
                     "the MSI window of dev-1", error.Message);
        Assert.Equal(ErrorCode.EINVAL, MapFails(map, 0xFEEF_F000, P).Code);
        Assert.Equal(0xFEF0_0000UL, Map(map, 0xFEF0_0000, P));
        Assert.Equal(0xFEDF_F000UL, Map(map, 0xFEDF_F000, P));
    }

    [Fact]
    public void Without_a_device_the_whole_64_bit_space_is_usable_at_the_host_page_size()
    {
        var map = new IovaMap<string>(Space);

        Assert.Equal(IovaMap.HostPageSize, map.PageSize);
        Assert.Equal([(0UL, ulong.MaxValue)], Usable(map));
        Assert.Equal(1UL << 60, Map(map, 1UL << 60, P));
        Assert.Equal(ulong.MaxValue - P + 1, Map(map, ulong.MaxValue - P + 1, P));
        Assert.Equal(P, Map(map, null, P)); // automatic IOVAs still skip IOVA 0
    }

    // ---- page size ----

    [Fact]
    public void Page_size_can_grow_when_every_mapping_is_aligned_to_it_and_then_governs_new_maps()
    {
        var map = NewMap();
        Map(map, 0x2000, 2 * P);

        Succeeds(map.TrySetPageSize(2 * P, out FabricError? error), error);

        Assert.Equal(2 * P, map.PageSize);
        Assert.Contains("page size 0x2000", MapFails(map, 0x4000, P).Message);
        Assert.Equal(ErrorCode.EINVAL, MapFails(map, 0x5000, 2 * P).Code);
        Assert.Equal(0x4000UL, Map(map, null, 2 * P)); // [0x2000, 0x4000) is taken, 0 is never handed out
    }

    [Theory]
    [InlineData(0x1000UL, 0x2000UL)] // IOVA not aligned to 0x2000
    [InlineData(0x4000UL, 0x1000UL)] // length not aligned to 0x2000
    public void Page_size_that_a_mapping_is_not_aligned_to_fails_with_EADDRINUSE_and_changes_nothing(ulong iova, ulong length)
    {
        var map = NewMap();
        Map(map, iova, length);

        FabricError error = Fails(map.TrySetPageSize(2 * P, out FabricError? e), e);

        Assert.Equal(ErrorCode.EADDRINUSE, error.Code);
        Assert.Equal($"cannot set the page size of {Space} to 0x2000: the mapping {IovaMap.Describe(iova, length)} is not aligned to it",
            error.Message);
        Assert.Equal(P, map.PageSize);
        Assert.Equal(iova + length, Map(map, iova + length, P));
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(3000UL)]
    public void Page_size_change_to_a_non_power_of_two_fails_with_EINVAL(ulong pageSize)
    {
        var map = NewMap();
        Assert.Equal(ErrorCode.EINVAL, Fails(map.TrySetPageSize(pageSize, out FabricError? error), error).Code);
        Assert.Equal(P, map.PageSize);
    }

    [Fact]
    public void A_smaller_page_size_gives_automatic_maps_the_low_iovas_again()
    {
        var map = NewMap();
        Assert.Equal(P, Map(map, null, P));

        Succeeds(map.TrySetPageSize(0x100, out FabricError? error), error);

        Assert.Equal(0x100UL, Map(map, null, 0x100));
        Assert.Equal(0x200UL, Map(map, null, 0x200));
    }

    // ---- reserved regions and the aperture ----

    [Fact]
    public void Reserve_over_a_live_mapping_fails_with_EADDRINUSE_and_changes_nothing()
    {
        var map = NewMap();
        Map(map, 0x4000, P);

        FabricError error = Fails(map.TryReserve(0x3000, 0x4FFF, "dev-1", out FabricError? e), e);

        Assert.Equal(ErrorCode.EADDRINUSE, error.Code);
        Assert.Equal($"cannot reserve [0x3000, 0x5000) in {Space} for dev-1: it overlaps the mapping [0x4000, 0x5000)", error.Message);
        Assert.Empty(map.Reservations);
        Assert.Equal([(0UL, ulong.MaxValue)], Usable(map));
    }

    [Fact]
    public void Reserve_with_its_start_above_its_last_iova_fails_with_EINVAL()
    {
        var map = NewMap();
        FabricError error = Fails(map.TryReserve(0x2000, 0x1FFF, "dev-1", out FabricError? e), e);
        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Empty(map.Reservations);
    }

    [Fact]
    public void Aperture_that_leaves_a_mapping_outside_fails_with_EADDRINUSE_and_changes_nothing()
    {
        var map = NewMap();
        Map(map, 0x1_0000_0000, P);

        FabricError error = Fails(map.TryLimitAperture(0xFFFF_FFFF, "dev-1", out FabricError? e), e);

        Assert.Equal(ErrorCode.EADDRINUSE, error.Code);
        Assert.Equal($"cannot limit {Space} to the aperture [0x0, 0x100000000) of dev-1: the mapping [0x100000000, 0x100001000) " +
                     "lies outside it", error.Message);
        Assert.Empty(map.Reservations);
        Assert.Equal([(0UL, ulong.MaxValue)], Usable(map));
    }

    [Fact]
    public void Aperture_with_a_start_reserves_both_sides_and_automatic_maps_begin_inside_it()
    {
        var map = NewMap();

        Succeeds(map.TryLimitAperture(0x10_0000, 0xFF_FFFF, "dev-1", out FabricError? error), error);

        Assert.Equal([(0x10_0000UL, 0xFF_FFFFUL)], Usable(map));
        Assert.Equal([new IovaReservation(0, 0xF_FFFF, "dev-1", true), new IovaReservation(0x100_0000, ulong.MaxValue, "dev-1", true)],
            map.Reservations.AsEnumerable());
        Assert.Equal(0x10_0000UL, Map(map, null, P));
        Assert.Equal(ErrorCode.EINVAL, MapFails(map, 0, P).Code);
    }

    [Fact]
    public void Usable_ranges_are_the_complement_of_the_reservations_and_widen_again_when_an_owner_leaves()
    {
        var map = NewMap();
        Succeeds(map.TryReserve(0xFEE0_0000, 0xFEEF_FFFF, "dev-1", out FabricError? e1), e1);
        Succeeds(map.TryLimitAperture((1UL << 48) - 1, "dev-1", out FabricError? e2), e2);
        Succeeds(map.TryReserve(0xFEE8_0000, 0xFF0F_FFFF, "dev-2", out FabricError? e3), e3); // overlaps dev-1's
        Succeeds(map.TryReserve(0xFF10_0000, 0xFF10_0FFF, "dev-2", out FabricError? e4), e4); // touches it

        Assert.Equal([(0UL, 0xFEDF_FFFFUL), (0xFF10_1000UL, (1UL << 48) - 1)], Usable(map));

        map.Unreserve("dev-1");
        Assert.Equal([(0UL, 0xFEE7_FFFFUL), (0xFF10_1000UL, ulong.MaxValue)], Usable(map));

        map.Unreserve("dev-2");
        map.Unreserve("dev-3"); // owns nothing
        Assert.Equal([(0UL, ulong.MaxValue)], Usable(map));
        Assert.Empty(map.Reservations);
    }

    [Fact]
    public void Usable_ranges_are_empty_when_everything_is_reserved_and_automatic_maps_fail_with_ENOSPC()
    {
        var map = NewMap();
        Succeeds(map.TryReserve(0, ulong.MaxValue, "dev-1", out FabricError? error), error);
        Assert.Empty(map.UsableRanges);
        Assert.Equal(ErrorCode.ENOSPC, MapFails(map, null, P).Code);
    }

    [Fact]
    public void Auto_map_skips_reserved_regions_and_uses_them_again_once_unreserved()
    {
        var map = NewMap();
        Succeeds(map.TryReserve(P, 4 * P - 1, "dev-1", out FabricError? e1), e1);
        Assert.Equal(4 * P, Map(map, null, P));
        Succeeds(map.TryReserve(5 * P, 5 * P, "dev-2", out FabricError? e2), e2); // one byte holds the whole page
        Assert.Equal(6 * P, Map(map, null, P));
        Assert.Equal(8 * P, Map(map, null, 2 * P));

        map.Unreserve("dev-1");

        Assert.Equal(P, Map(map, null, P));
        Assert.Equal(2 * P, Map(map, null, 2 * P));
    }

    // ---- allowed ranges ----

    [Fact]
    public void Auto_map_stays_inside_the_allowed_ranges_and_may_span_two_that_touch()
    {
        var map = NewMap();
        Succeeds(map.TrySetAllowed([(0x20000, 0x2FFFF), (0x10000, 0x13FFF), (0x40000, 0x41FFF), (0x42000, 0x43FFF)],
            out FabricError? error), error);

        Assert.Equal([(0x10000UL, 0x13FFFUL), (0x20000UL, 0x2FFFFUL), (0x40000UL, 0x41FFFUL), (0x42000UL, 0x43FFFUL)],
            Allowed(map));
        Assert.Equal(0x10000UL, Map(map, null, 4 * P));
        Assert.Equal(0x20000UL, Map(map, null, 4 * P));
        Assert.Equal(0x28000UL, Map(map, null, 8 * P));
        Assert.Equal(0x24000UL, Map(map, null, P));
        Assert.Equal(0x40000UL, Map(map, null, 4 * P)); // fits only in the two ranges that touch, taken together
        FabricError full = MapFails(map, null, 8 * P);
        Assert.Equal(ErrorCode.ENOSPC, full.Code);
        Assert.Contains("allowed ranges", full.Message);
    }

    [Fact]
    public void Auto_map_never_hands_out_iova_0_even_when_it_is_allowed()
    {
        var map = NewMap();
        Succeeds(map.TrySetAllowed([(0, 2 * P - 1)], out FabricError? error), error);
        Assert.Equal(P, Map(map, null, P));
        Assert.Equal(ErrorCode.ENOSPC, MapFails(map, null, P).Code);
    }

    [Fact]
    public void A_fixed_map_may_lie_outside_the_allowed_ranges()
    {
        var map = NewMap();
        Succeeds(map.TrySetAllowed([(0x10000, 0x1FFFF)], out FabricError? error), error);
        Assert.Equal(0x1000UL, Map(map, 0x1000, P));
        Assert.Equal(0x10000UL, Map(map, null, P));
    }

    [Fact]
    public void An_empty_allowed_list_clears_it()
    {
        var map = NewMap();
        Succeeds(map.TrySetAllowed([(0x10000, 0x1FFFF)], out FabricError? e1), e1);
        Assert.Equal(0x10000UL, Map(map, null, P));

        Succeeds(map.TrySetAllowed([], out FabricError? e2), e2);

        Assert.Empty(map.AllowedRanges);
        Assert.Equal(P, Map(map, null, P));
    }

    [Fact]
    public void Allowed_ranges_that_are_malformed_or_overlap_fail_with_EINVAL_and_change_nothing()
    {
        var map = NewMap();
        Succeeds(map.TrySetAllowed([(0x10000, 0x1FFFF)], out FabricError? e0), e0);

        FabricError backwards = Fails(map.TrySetAllowed([(0x30000, 0x3FFFF), (0x2000, 0x1FFF)], out FabricError? e1), e1);
        FabricError overlapping = Fails(map.TrySetAllowed([(0x30000, 0x3FFFF), (0x20000, 0x30000)], out FabricError? e2), e2);

        Assert.Equal(ErrorCode.EINVAL, backwards.Code);
        Assert.Equal(ErrorCode.EINVAL, overlapping.Code);
        Assert.Equal($"cannot allow [0x30000, 0x40000) in {Space}: it overlaps the range [0x20000, 0x30001) of the same list",
            overlapping.Message);
        Assert.Equal([(0x10000UL, 0x1FFFFUL)], Allowed(map));
        Assert.Equal(0x10000UL, Map(map, null, P));
    }

    [Fact]
    public void Allowed_range_that_touches_a_reserved_region_fails_with_EADDRINUSE_and_changes_nothing()
    {
        var map = NewMap();
        Succeeds(map.TryReserve(0xFEE0_0000, 0xFEEF_FFFF, "dev-1", out FabricError? e0), e0);

        FabricError error = Fails(map.TrySetAllowed([(0x10000, 0x1FFFF), (0xFE00_0000, 0xFEE0_0000)], out FabricError? e), e);

        Assert.Equal(ErrorCode.EADDRINUSE, error.Code);
        Assert.Equal($"cannot allow [0xfe000000, 0xfee00001) in {Space}: it touches [0xfee00000, 0xfef00000) reserved by dev-1",
            error.Message);
        Assert.Empty(map.AllowedRanges);
    }

    [Fact]
    public void Reserve_over_an_allowed_range_fails_with_EADDRINUSE_so_the_space_cannot_narrow()
    {
        var map = NewMap();
        Succeeds(map.TrySetAllowed([(0x10000, 0x1FFFF)], out FabricError? e0), e0);

        FabricError reserve = Fails(map.TryReserve(0x1F000, 0x2FFFF, "dev-1", out FabricError? e1), e1);
        FabricError aperture = Fails(map.TryLimitAperture(0x17FFF, "dev-1", out FabricError? e2), e2);

        Assert.Equal(ErrorCode.EADDRINUSE, reserve.Code);
        Assert.Equal($"cannot reserve [0x1f000, 0x30000) in {Space} for dev-1: it overlaps the allowed range [0x10000, 0x20000)",
            reserve.Message);
        Assert.Equal(ErrorCode.EADDRINUSE, aperture.Code);
        Assert.EndsWith("the allowed range [0x10000, 0x20000) lies outside it", aperture.Message);
        Assert.Empty(map.Reservations);
        Succeeds(map.TryLimitAperture(0x1FFFF, "dev-1", out FabricError? e3), e3);
    }

    // ---- covering lookup (IOAS_COPY) ----

    [Fact]
    public void Covering_lookup_returns_the_pieces_of_adjacent_mappings_in_order()
    {
        var map = NewMap();
        Map(map, 0x1000, P, value: "a");
        Map(map, 0x2000, 2 * P, value: "b");
        Map(map, 0x4000, P, value: "c");

        Succeeds(map.TryGetCovering(0x1800, 0x3000, out var pieces, out FabricError? error), error);

        Assert.Equal([("a", 0x800UL, 0x800UL), ("b", 0UL, 0x2000UL), ("c", 0UL, 0x800UL)],
            pieces.Select(p => (p.Mapping.Value, p.OffsetInMapping, p.Length)));
    }

    [Fact]
    public void Covering_lookup_inside_one_mapping_returns_one_piece_even_at_the_top_of_the_space()
    {
        var map = NewMap();
        Map(map, ulong.MaxValue - P + 1, P, value: "top");

        Succeeds(map.TryGetCovering(ulong.MaxValue - 0xF, 0x10, out var pieces, out FabricError? error), error);

        var piece = Assert.Single(pieces);
        Assert.Equal(("top", 0xFF0UL, 0x10UL), (piece.Mapping.Value, piece.OffsetInMapping, piece.Length));
    }

    [Fact]
    public void Covering_lookup_with_a_hole_or_an_unmapped_start_fails_with_ENOENT()
    {
        var map = NewMap();
        Map(map, 0x1000, P);
        Map(map, 0x3000, P);

        FabricError hole = Fails(map.TryGetCovering(0x1000, 3 * P, out var pieces, out FabricError? e1), e1);
        FabricError start = Fails(map.TryGetCovering(0x800, 0x1000, out _, out FabricError? e2), e2);
        FabricError end = Fails(map.TryGetCovering(0x3000, P + 1, out _, out FabricError? e3), e3);

        Assert.Empty(pieces);
        Assert.Equal(ErrorCode.ENOENT, hole.Code);
        Assert.Equal($"cannot copy from [0x1000, 0x4000) in {Space}: IOVA 0x2000 after the mapping [0x1000, 0x2000) is not mapped",
            hole.Message);
        Assert.Equal(ErrorCode.ENOENT, start.Code);
        Assert.Contains("IOVA 0x800 is not mapped", start.Message);
        Assert.Equal(ErrorCode.ENOENT, end.Code);
    }

    [Fact]
    public void Covering_lookup_of_zero_length_fails_with_EINVAL_and_a_wrapping_one_with_EOVERFLOW()
    {
        var map = NewMap();
        Map(map, 0x1000, P);
        Assert.Equal(ErrorCode.EINVAL, Fails(map.TryGetCovering(0x1000, 0, out _, out FabricError? e1), e1).Code);
        Assert.Equal(ErrorCode.EOVERFLOW, Fails(map.TryGetCovering(0x1000, ulong.MaxValue, out _, out FabricError? e2), e2).Code);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(3000UL)]
    public void The_page_size_must_be_a_power_of_two(ulong pageSize)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IovaMap<int>(Space, pageSize));
    }
}
