using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Node.Jobs;

namespace Fabric.Tests.Jobs;

/// <summary>Where job shards go: to the least loaded eligible region, and never anywhere else afterwards.</summary>
public sealed class JobShardAllocationTests : Akka.TestKit.Xunit2.TestKit
{
    private static IImmutableList<string> Shards(int count, string prefix) => [.. Enumerable.Range(0, count).Select(i => $"{prefix}{i}")];

    [Fact]
    public async Task A_newcomer_with_no_shards_takes_none_from_a_loaded_region()
    {
        var (loaded, newcomer) = (CreateTestProbe().Ref, CreateTestProbe().Ref);
        var allocations = ImmutableDictionary<IActorRef, IImmutableList<string>>.Empty
            .Add(loaded, Shards(10, "a")).Add(newcomer, ImmutableList<string>.Empty);
        var strategy = new JobShardAllocation(() => new HashSet<Address> { ((ExtendedActorSystem)Sys).Provider.DefaultAddress },
            ((ExtendedActorSystem)Sys).Provider.DefaultAddress);

        Assert.Empty(await strategy.Rebalance(allocations, ImmutableHashSet<string>.Empty));
        // A new shard, though, goes to the newcomer: it has the fewest.
        Assert.Equal(newcomer, await strategy.AllocateShard(loaded, "new", allocations));
    }

    [Fact]
    public void A_new_shard_goes_to_the_least_loaded_eligible_region_the_requester_first_among_equals()
    {
        var (a, b, c) = (CreateTestProbe().Ref, CreateTestProbe().Ref, CreateTestProbe().Ref);
        var allocations = ImmutableDictionary<IActorRef, IImmutableList<string>>.Empty
            .Add(a, Shards(3, "a")).Add(b, Shards(1, "b")).Add(c, Shards(1, "c"));

        Assert.Contains(JobShardAllocation.Choose(a, allocations, _ => true), new[] { b, c });
        Assert.Equal(b, JobShardAllocation.Choose(b, allocations, _ => true));
        Assert.Equal(c, JobShardAllocation.Choose(c, allocations, _ => true));
        // A region on a node that is not Up and reachable gets nothing, however empty.
        Assert.Equal(c, JobShardAllocation.Choose(a, allocations, r => !r.Equals(b)));
        Assert.Equal(a, JobShardAllocation.Choose(a, allocations, _ => false));
    }
}
