using System.Collections.Immutable;
using Fabric.Core.Jobs;

namespace Fabric.Node.Chaos;

public enum FaultKind { Kill, Freeze }

/// <summary>One job of a chaos run, under the id it is submitted with (a retried submission starts nothing twice).</summary>
public sealed record ChaosJob(string Id, int Wave, JobSpec Spec);

/// <summary>
/// One fault: once the first job of wave <see cref="Wave"/> has completed <see cref="AtProgress"/> of its tasks, the
/// victims are killed (and started again <see cref="Down"/> later) or frozen (and thawed <see cref="Down"/> later).
/// </summary>
public sealed record ChaosFault(int Number, FaultKind Kind, int Wave, ImmutableArray<string> Victims, double AtProgress, TimeSpan Down);

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
        var faults = ImmutableArray.CreateBuilder<ChaosFault>();
        for (var i = 0; i < faultCount; i++)
        {
            var kind = i == freezeAt ? FaultKind.Freeze : FaultKind.Kill;
            // A freeze is one node; kills take up to a minority at once (on 5 or more nodes, sometimes two).
            var count = kind == FaultKind.Freeze ? 1 : 1 + (random.NextDouble() < 0.3 ? random.Next(options.MaxDown) : 0);
            var victims = nodes.OrderBy(_ => random.Next()).Take(count).Order(StringComparer.Ordinal).ToImmutableArray();
            var progress = Math.Round(0.15 + 0.45 * random.NextDouble(), 2);
            // A freeze outlasts the failure detector (about 2.5 s) but not the split-brain resolver's wait: the node is
            // seen unreachable, then back. A killed node stays down long enough for its loss to be noticed.
            var down = kind == FaultKind.Freeze
                ? TimeSpan.FromSeconds(Math.Round(3.5 + random.NextDouble(), 1))
                : TimeSpan.FromSeconds(Math.Round(3.0 + 3.0 * random.NextDouble(), 1));
            faults.Add(new ChaosFault(i + 1, kind, i, victims, progress, down));
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
