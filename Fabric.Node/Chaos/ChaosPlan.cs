using System.Collections.Immutable;
using Fabric.Core.Jobs;

namespace Fabric.Node.Chaos;

/// <summary>
/// What a fault does to its victims. Kill and Freeze are signals to their processes; Cut, Split and OneWay are link
/// faults between network namespaces (<c>--netns --partitions</c>): the processes run on and lose each other.
/// </summary>
public enum FaultKind
{
    /// <summary>SIGKILL, then a restart.</summary>
    Kill,

    /// <summary>SIGSTOP, then SIGCONT.</summary>
    Freeze,

    /// <summary>The victim's link down: it reaches nobody and nobody reaches it.</summary>
    Cut,

    /// <summary>The victims (a minority) on a bridge of their own: each side talks among itself only.</summary>
    Split,

    /// <summary>What the victim sends to its peer is dropped; the other direction still carries packets.</summary>
    OneWay,
}

/// <summary>One job of a chaos run, under the id it is submitted with (a retried submission starts nothing twice).</summary>
public sealed record ChaosJob(string Id, int Wave, JobSpec Spec);

/// <summary>
/// One fault: once the first job of wave <see cref="Wave"/> has completed <see cref="AtProgress"/> of its tasks, the
/// victims are killed (and started again <see cref="Down"/> later), frozen (and thawed <see cref="Down"/> later), or
/// cut off from the others (and the links healed <see cref="Down"/> later). <see cref="Peers"/>: for a one-way cut,
/// the node the victim can no longer send to; empty otherwise.
/// </summary>
public sealed record ChaosFault(int Number, FaultKind Kind, int Wave, ImmutableArray<string> Victims, double AtProgress, TimeSpan Down, ImmutableArray<string> Peers)
{
    public bool IsPartition => Kind is FaultKind.Cut or FaultKind.Split or FaultKind.OneWay;
}

/// <summary>
/// Everything a chaos run will do, drawn from its seed alone: the jobs of each wave and the fault that hits each
/// wave. Faults are tied to job progress rather than to the clock, so a replay hits the same moment of the same job.
/// Never more than a minority of the nodes is down at once, and the next fault waits for the cluster to be whole.
/// </summary>
public sealed record ChaosPlan(int Seed, ImmutableArray<string> Nodes, ImmutableArray<ChaosJob> Jobs, ImmutableArray<ChaosFault> Faults)
{
    public static ChaosPlan Create(ChaosOptions options, string namePrefix = "n")
    {
        var random = new Random(options.Seed);
        var nodes = Enumerable.Range(1, options.Nodes).Select(i => $"{namePrefix}{i}").ToImmutableArray();
        var faultCount = options.Kills + (options.Freeze ? 1 : 0);
        var freezeAt = options.Freeze ? random.Next(faultCount) : -1;
        var kinds = options.Partitions ? PartitionKinds(random, faultCount, freezeAt) : null;
        var faults = ImmutableArray.CreateBuilder<ChaosFault>();
        for (var i = 0; i < faultCount; i++)
        {
            var kind = i == freezeAt ? FaultKind.Freeze : kinds?[i] ?? FaultKind.Kill;
            // A freeze, a cut and a one-way cut are one node; kills and splits take up to a minority at once (on 5 or
            // more nodes, sometimes two).
            var count = kind is FaultKind.Freeze or FaultKind.Cut or FaultKind.OneWay ? 1 : 1 + (random.NextDouble() < 0.3 ? random.Next(options.MaxDown) : 0);
            var shuffled = nodes.OrderBy(_ => random.Next()).ToList();
            var victims = shuffled.Take(count).Order(StringComparer.Ordinal).ToImmutableArray();
            var peers = kind == FaultKind.OneWay ? [shuffled[count]] : ImmutableArray<string>.Empty;
            var progress = Math.Round(0.15 + 0.45 * random.NextDouble(), 2);
            // A freeze outlasts the failure detector (about 2.5 s) but not the split-brain resolver's wait: the node is
            // seen unreachable, then back. A killed node stays down long enough for its loss to be noticed. A partition
            // outlasts the failure detector and the resolver's 3 s of stability with room to spare, so the resolver
            // decides while it lasts: one side is downed, and rejoins (or is restarted) after the heal.
            var down = kind switch
            {
                FaultKind.Freeze => TimeSpan.FromSeconds(Math.Round(3.5 + random.NextDouble(), 1)),
                FaultKind.Kill => TimeSpan.FromSeconds(Math.Round(3.0 + 3.0 * random.NextDouble(), 1)),
                _ => TimeSpan.FromSeconds(Math.Round(PartitionSeconds + 3.0 * random.NextDouble(), 1)),
            };
            faults.Add(new ChaosFault(i + 1, kind, i, victims, progress, down, peers));
        }
        var jobs = ImmutableArray.CreateBuilder<ChaosJob>();
        for (var wave = 0; wave <= faultCount; wave++)
            for (var j = 0; j < options.JobsPerWave; j++)
            {
                var id = $"chaos-s{options.Seed}-w{wave + 1:00}-j{j + 1}";
                jobs.Add(new ChaosJob(id, wave, ChaosJobs.Create(id, random.Next())));
            }
        return new ChaosPlan(options.Seed, nodes, jobs.ToImmutable(), faults.ToImmutable());
    }

    /// <summary>The least a partition lasts: detection (~3 s) + the resolver's stable-after (3 s) + its decision, and a margin.</summary>
    public const double PartitionSeconds = 10.0;

    /// <summary>
    /// The kind of each fault of a run with partitions: a cut, a split and a one-way cut each at least once (when
    /// there are that many faults besides the freeze), at places the seed draws; the rest drawn evenly among kills and
    /// the three partitions.
    /// </summary>
    private static FaultKind[] PartitionKinds(Random random, int faultCount, int freezeAt)
    {
        FaultKind[] drawn = [FaultKind.Kill, FaultKind.Cut, FaultKind.Split, FaultKind.OneWay];
        var kinds = Enumerable.Range(0, faultCount).Select(_ => drawn[random.Next(drawn.Length)]).ToArray();
        var places = Enumerable.Range(0, faultCount).Where(i => i != freezeAt).OrderBy(_ => random.Next()).ToList();
        foreach (var (kind, place) in new[] { FaultKind.Cut, FaultKind.Split, FaultKind.OneWay }.Zip(places)) kinds[place] = kind;
        return kinds;
    }

    public IEnumerable<ChaosJob> Wave(int wave) => Jobs.Where(j => j.Wave == wave);

    public int Waves => Faults.Length + 1;
}

/// <summary>
/// The jobs a chaos run submits: many short tasks in four kinds of stages, so that whenever a node dies it is running
/// some of them and holds results others need. A "map" stage (matmul then scale, one task per part), a "mix" stage
/// where each task combines its part with its neighbour's (an input on another device, often another node: P2P), a
/// "fold" tree of adds to one result, and its sum.
/// </summary>
public static class ChaosJobs
{
    /// <param name="parts">Tasks per stage (default: drawn, 8 to 14).</param>
    /// <param name="n">Matrices are n×n floats (default: drawn, 64 or 128).</param>
    public static JobSpec Create(string name, int seed, int? parts = null, uint? n = null)
    {
        var random = new Random(seed);
        var drawnN = (uint)(64 * random.Next(1, 3));
        var drawnParts = random.Next(8, 15);
        return Build(name, random, parts ?? drawnParts, n ?? drawnN);
    }

    private static JobSpec Build(string name, Random random, int parts, uint n)
    {
        var bytes = (long)n * n * 4;
        var job = new JobBuilder(name)
            .RandomInput("a", (long)n * n, seed: (ulong)random.Next(), scale: 1f)
            .RandomInput("b", (long)n * n, seed: (ulong)random.Next(), scale: 0.05f);
        for (var i = 0; i < parts; i++)
        {
            var k = i;
            var alpha = 1f + 0.125f * k;
            job.Buffer($"t{k}", bytes).Buffer($"p{k}", bytes)
                .Task($"map{k}", t => t.MatMul($"t{k}", "a", "b", n, n, n).Scale($"p{k}", $"t{k}", alpha));
        }
        for (var i = 0; i < parts; i++)
        {
            var k = i;
            var beta = 0.5f + 0.25f * (k % 3);
            job.Buffer($"q{k}", bytes).Task($"mix{k}", t => t.Axpy($"q{k}", $"p{(k + 1) % parts}", $"p{k}", beta));
        }
        var level = Enumerable.Range(0, parts).Select(k => $"q{k}").ToList();
        var folds = 0;
        while (level.Count > 1)
        {
            var next = new List<string>();
            for (var i = 0; i + 1 < level.Count; i += 2)
            {
                var (left, right, dst) = (level[i], level[i + 1], $"f{folds}");
                job.Buffer(dst, bytes).Task($"fold{folds++}", t => t.Add(dst, left, right));
                next.Add(dst);
            }
            if (level.Count % 2 == 1) next.Add(level[^1]);
            level = next;
        }
        var total = level[0];
        job.MarkOutput(total).Output("sum", 4).Task("sum", t => t.ReduceSum("sum", total));
        return job.Build();
    }
}
