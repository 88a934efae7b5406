using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;

namespace Fabric.Node.Jobs;

/// <summary>
/// Where the job region's shards live. A new shard goes to the region with the fewest shards among the nodes that are
/// Up and reachable (the requester's when it ties, or when no node qualifies); a shard never moves otherwise:
/// <see cref="Rebalance"/> picks nothing. Sharding's default strategy moves shards onto a node that joins, which
/// hands a running job off (its run stopped, recovered on the newcomer) with no failure behind it. So a job moves
/// only when its node is lost or leaves (the coordinator then allocates its shards again, here).
/// </summary>
internal sealed class JobShardAllocation(Func<IReadOnlySet<Address>> eligible, Address selfAddress) : IShardAllocationStrategy
{
    /// <summary>Eligible nodes: members Up (or WeaklyUp) that no node sees as unreachable.</summary>
    public static JobShardAllocation For(ActorSystem system)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        return new JobShardAllocation(() =>
        {
            var state = cluster.State;
            var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
            return state.Members.Where(m => m.Status is MemberStatus.Up or MemberStatus.WeaklyUp && !unreachable.Contains(m.Address))
                .Select(m => m.Address).ToHashSet();
        }, cluster.SelfAddress);
    }

    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId,
        IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
    {
        var nodes = eligible();
        return Task.FromResult(Choose(requester, currentShardAllocations,
            region => nodes.Contains(region.Path.Address.HasGlobalScope ? region.Path.Address : selfAddress)));
    }

    public Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations,
        IImmutableSet<string> rebalanceInProgress) =>
        Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);

    /// <summary>The eligible region with the fewest shards, the requester first among equals; the requester when none is eligible.</summary>
    internal static IActorRef Choose(IActorRef requester, IImmutableDictionary<IActorRef, IImmutableList<string>> allocations,
        Func<IActorRef, bool> eligible) =>
        allocations
            .Where(kv => eligible(kv.Key))
            .OrderBy(kv => kv.Value.Count)
            .ThenBy(kv => kv.Key.Equals(requester) ? 0 : 1)
            .Select(kv => kv.Key)
            .FirstOrDefault() ?? requester;
}
