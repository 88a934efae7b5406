using Fabric.Core;
using Fabric.Devices;
using Fabric.Devices.Internal.Memory;
using Fabric.Devices.Internal.State;

namespace Fabric.Tests.Devices;

/// <summary>The pure half of the per-context limits: the decisions and the counts a context's buffer table keeps.</summary>
public sealed class ContextLimitsTests : IDisposable
{
    private const string Name = "t/dev0/ctx-7";
    private static readonly DeviceProfile Profile = new() { MemoryBytes = 1L << 20 };
    private readonly DeviceMemory _memory = new(Profile.MemoryBytes, Profile.PageSize);

    public void Dispose() => _memory.Dispose();

    [Theory]
    [InlineData(0, 1)]
    [InlineData(3, 4)]
    [InlineData(4, 4)]
    [InlineData(5, 4)]
    public void A_buffer_is_refused_exactly_when_the_context_holds_its_limit(int held, int limit)
    {
        var refused = ContextLimits.Buffer(Name, held, limit);
        Assert.Equal(held >= limit, refused is not null);
        if (refused is null) return;
        Assert.Equal(ErrorCode.ENOSPC, refused.Code);
        Assert.Equal($"context {Name} holds {held} buffers, its limit: allocate fewer or free some", refused.Message);
    }

    [Theory]
    [InlineData(2, 1, 3, null)]
    [InlineData(3, 1, 3, "context t/dev0/ctx-7 holds 3 mappings, its limit: map fewer or unmap some")]
    [InlineData(1, 2, 3, null)]
    [InlineData(2, 2, 3, "context t/dev0/ctx-7 holds 2 mappings and asks for 2 more, past its limit of 3: map fewer or unmap some")]
    [InlineData(int.MaxValue, 1, int.MaxValue, "context t/dev0/ctx-7 holds 2147483647 mappings, its limit: map fewer or unmap some")]
    public void Mappings_are_refused_past_the_limit_and_the_sentence_names_both_counts(int held, int adding, int limit, string? expected)
    {
        var refused = ContextLimits.Mappings(Name, held, adding, limit);
        Assert.Equal(expected, refused?.Message);
        if (refused is not null) Assert.Equal(ErrorCode.ENOSPC, refused.Code);
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1023, 1024)]
    [InlineData(1024, 1024)]
    public void A_submission_is_refused_busy_exactly_at_the_pending_limit(int pending, int limit)
    {
        var refused = ContextLimits.Submission(Name, pending, limit);
        Assert.Equal(pending >= limit, refused is not null);
        if (refused is null) return;
        Assert.Equal(ErrorCode.EBUSY, refused.Code);
        Assert.Equal($"context {Name} has {pending} submissions pending, its limit; wait for some", refused.Message);
    }

    [Fact]
    public void A_fence_wait_is_refused_busy_exactly_at_the_clients_limit()
    {
        Assert.Null(ContextLimits.Waiter("fabric-client-1", "t/dev0", 2, 3));
        var refused = ContextLimits.Waiter("fabric-client-1", "t/dev0", 3, 3);
        Assert.Equal(ErrorCode.EBUSY, refused!.Code);
        Assert.Equal("client fabric-client-1 has 3 fence waits pending on t/dev0, its limit; wait for some", refused.Message);
    }

    [Fact]
    public void Waiters_are_counted_per_owner_and_every_way_a_wait_ends_gives_its_slot_back()
    {
        var waiters = new FenceWaiters<string>();
        var (alice, bob) = (new object(), new object());
        waiters.Add("a1", [1], false, new(alice, 1));
        var a2 = waiters.Add("a2", [1, 2], true, new(alice, 2));
        waiters.Add("a3", [3], false, new(alice, 3));
        waiters.Add("b1", [1], false, new(bob, 1));
        waiters.Add("anonymous", [1], false, null);
        Assert.Equal((3, 1, 5), (waiters.CountOf(alice), waiters.CountOf(bob), waiters.Count));

        Assert.False(waiters.Adds(new(alice, 3))); // the same key replaces its wait: no new slot
        waiters.Add("a3 again", [4], false, new(alice, 3));
        Assert.Equal(3, waiters.CountOf(alice));
        Assert.True(waiters.Adds(new(alice, 4)));

        Assert.Equal(["a1", "a2", "anonymous", "b1"], waiters.Signalled(1).Select(w => w.ReplyTo).Order(StringComparer.Ordinal));
        Assert.Equal((1, 0), (waiters.CountOf(alice), waiters.CountOf(bob)));
        Assert.Null(waiters.Expire(a2.Id)); // answered already, through fence 1
        Assert.NotNull(waiters.Cancel(new(alice, 3)));
        Assert.Equal(0, waiters.CountOf(alice));

        waiters.Add("a5", [5], false, new(alice, 5));
        var expiring = waiters.Add("a6", [6], false, new(alice, 6));
        Assert.NotNull(waiters.Expire(expiring.Id));
        Assert.Equal(1, waiters.CountOf(alice));
        waiters.RemoveAll();
        Assert.Equal((0, 0), (waiters.CountOf(alice), waiters.Count));
    }

    [Fact]
    public void The_table_refuses_the_buffer_past_its_limit_before_taking_memory_and_a_free_makes_room()
    {
        var table = new BufferTable(new ContextId(7), Name, maxBuffers: 3);
        var handles = Enumerable.Range(0, 3).Select(_ => Allocated(table)).ToList();
        var used = _memory.Stats.Used;

        Assert.False(table.TryAllocate(_memory, Profile, new DeviceId("t", 0), 4096, 0, AllocationFlags.None, out _, out var error));
        Assert.Equal(ErrorCode.ENOSPC, error!.Code);
        Assert.Contains("holds 3 buffers", error.Message);
        Assert.Equal(used, _memory.Stats.Used); // nothing allocated for the refused one
        Assert.Equal(3, table.Count);

        Assert.True(table.TryFree(handles[0], out var freed, out _));
        freed.Release(new ImportCount());
        Assert.Null(table.CheckRoom());
        Allocated(table);
        Assert.NotNull(table.CheckRoom());
    }

    [Fact]
    public void The_table_counts_mappings_across_buffers_and_uncounts_refused_and_unmapped_ones()
    {
        var table = new BufferTable(new ContextId(7), Name, maxMappings: 2);
        var a = Allocated(table);
        var b = Allocated(table);

        Assert.True(table.TryBeginMap(a, 0, -1, Access.ReadWrite, out _, out _, out _));
        Assert.True(table.TryBeginMap(b, 0, -1, Access.Read, out _, out _, out _));
        Assert.Equal(2, table.Mappings);
        Assert.False(table.TryBeginMap(a, 0, -1, Access.Read, out _, out _, out var full));
        Assert.Equal(ErrorCode.ENOSPC, full!.Code);
        Assert.Equal(2, table.Mappings);
        Assert.Equal(1, table.MappingsOf(a)); // the refused map counted nothing on its buffer
        Assert.NotNull(table.CheckMappingRoom(1));

        table.MappingsRemoved([b]);
        Assert.Equal(1, table.Mappings);
        Assert.Null(table.CheckMappingRoom(1));
        Assert.NotNull(table.CheckMappingRoom(2)); // a copy of two pieces would not fit
        Assert.True(table.TryCountMappings([a]));
        Assert.Equal(2, table.Mappings);

        table.MappingsRemoved([a, a]);
        Assert.Equal(0, table.Mappings);
        table.MappingsRemoved([a]); // an extra release does not go below zero
        Assert.Equal(0, table.Mappings);
    }

    [Theory]
    [InlineData(nameof(DeviceProfile.MaxBuffersPerContext))]
    [InlineData(nameof(DeviceProfile.MaxMappingsPerContext))]
    [InlineData(nameof(DeviceProfile.MaxPendingSubmissionsPerContext))]
    [InlineData(nameof(DeviceProfile.MaxFenceWaitersPerClient))]
    public void A_profile_with_a_limit_below_one_is_refused_naming_the_field(string field)
    {
        var profile = field switch
        {
            nameof(DeviceProfile.MaxBuffersPerContext) => new DeviceProfile { MaxBuffersPerContext = 0 },
            nameof(DeviceProfile.MaxMappingsPerContext) => new DeviceProfile { MaxMappingsPerContext = -1 },
            nameof(DeviceProfile.MaxPendingSubmissionsPerContext) => new DeviceProfile { MaxPendingSubmissionsPerContext = 0 },
            _ => new DeviceProfile { MaxFenceWaitersPerClient = 0 },
        };
        Assert.Equal(field, Assert.Throws<ArgumentException>(() => profile.Validate()).ParamName);
        new DeviceProfile().Validate(); // the defaults pass
    }

    private BufferHandle Allocated(BufferTable table)
    {
        Assert.True(table.TryAllocate(_memory, Profile, new DeviceId("t", 0), 4096, 0, AllocationFlags.None, out var view, out var error), error?.Message);
        return view.Handle;
    }
}
