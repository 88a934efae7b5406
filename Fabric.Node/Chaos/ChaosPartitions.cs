using System.Collections.Immutable;
using Fabric.Node.Hosting;

namespace Fabric.Node.Chaos;

/// <summary>
/// The link faults of a chaos run on namespaces (<see cref="FaultKind.Cut"/>, <see cref="FaultKind.Split"/>,
/// <see cref="FaultKind.OneWay"/>), struck and healed through the cluster's <see cref="NetworkLab"/>. The run itself
/// sits on the main bridge, so it reaches the side that stayed there; <see cref="Unreachable"/> says which nodes it
/// cannot reach meanwhile (it asks their gateways nothing until the heal).
/// </summary>
public sealed class ChaosPartitions(LocalCluster cluster)
{
    private NetworkLab Lab => cluster.Lab ?? throw new InvalidOperationException("link faults need the cluster on namespaces (--netns)");

    /// <summary>The nodes this process cannot reach while the current fault lasts.</summary>
    public ImmutableHashSet<string> Unreachable { get; private set; } = [];

    public async Task StrikeAsync(ChaosFault fault, CancellationToken cancel)
    {
        var victims = fault.Victims.Select(name => cluster.HostOf(cluster[name])).ToList();
        switch (fault.Kind)
        {
            case FaultKind.Cut:
                foreach (var host in victims) await Lab.CutAsync(host, cancel);
                Unreachable = [.. fault.Victims];
                break;
            case FaultKind.Split:
                await Lab.SplitAsync(victims, cancel);
                Unreachable = [.. fault.Victims];
                break;
            case FaultKind.OneWay:
                await Lab.CutOneWayAsync(victims.Single(), cluster.HostOf(cluster[fault.Peers.Single()]), cancel);
                break;
            default:
                throw new ArgumentException($"fault {fault.Number} is a {fault.Kind}, not a link fault");
        }
    }

    public async Task HealAsync(CancellationToken cancel)
    {
        await Lab.HealAsync(cancel);
        Unreachable = [];
    }

    /// <summary>What the fault does, in a few words: <c>cut n2 off</c>, <c>split n1+n2 | n3+n4+n5</c>, <c>drop n1 → n3</c>.</summary>
    public static string Describe(ChaosFault fault, IEnumerable<string> nodes) => fault.Kind switch
    {
        FaultKind.Cut => $"link of {string.Join(", ", fault.Victims)} down",
        FaultKind.Split => $"split {string.Join('+', fault.Victims)} | {string.Join('+', nodes.Except(fault.Victims))}",
        FaultKind.OneWay => $"drop what {fault.Victims.Single()} sends to {fault.Peers.Single()}",
        _ => fault.Kind.ToString(),
    };

    /// <summary>
    /// The two sides of a partition: the victims and the rest. (A one-way cut has no clean sides: its victim and its
    /// peer each lose the other while both still reach everyone else.)
    /// </summary>
    public static (ImmutableArray<string> Cut, ImmutableArray<string> Others) Sides(ChaosFault fault, IEnumerable<string> nodes) =>
        (fault.Victims, [.. nodes.Except(fault.Victims).Order(StringComparer.Ordinal)]);
}
