using Fabric.Core.Jobs;
using Fabric.Node.Chaos;

namespace Fabric.Tests.Chaos;

public sealed class ChaosPlanTests
{
    private static string Describe(ChaosPlan plan) =>
        string.Join("\n", plan.Faults.Select(f => $"{f.Number} {f.Kind} {string.Join('+', f.Victims)} {f.Wave} {f.AtProgress} {f.Down}")) + "\n" +
        string.Join("\n", plan.Jobs.Select(j => $"{j.Id} {j.Wave} {JobJson.Write(j.Spec)}"));

    [Fact]
    public void The_same_seed_gives_the_same_jobs_and_fault_schedule()
    {
        var options = new ChaosOptions { Seed = 42, Nodes = 5, Kills = 6, Freeze = true };

        Assert.Equal(Describe(ChaosPlan.Create(options)), Describe(ChaosPlan.Create(options)));
        Assert.NotEqual(Describe(ChaosPlan.Create(options)), Describe(ChaosPlan.Create(options with { Seed = 43 })));
    }

    [Theory]
    [InlineData(3, 10, false)]
    [InlineData(5, 12, true)]
    [InlineData(7, 20, false)]
    public void Faults_never_take_a_majority_and_each_wave_has_its_jobs(int nodes, int kills, bool freeze)
    {
        var options = new ChaosOptions { Seed = 7, Nodes = nodes, Kills = kills, Freeze = freeze, JobsPerWave = 3 };

        var plan = ChaosPlan.Create(options);

        Assert.Equal(kills, plan.Faults.Count(f => f.Kind == FaultKind.Kill));
        Assert.Equal(freeze ? 1 : 0, plan.Faults.Count(f => f.Kind == FaultKind.Freeze));
        Assert.All(plan.Faults, f =>
        {
            Assert.InRange(f.Victims.Length, 1, (nodes - 1) / 2);
            Assert.Equal(f.Victims.Length, f.Victims.Distinct().Count());
            Assert.All(f.Victims, v => Assert.Contains(v, plan.Nodes));
            Assert.InRange(f.AtProgress, 0.15, 0.6);
        });
        Assert.Equal((plan.Faults.Length + 1) * 3, plan.Jobs.Length);
        Assert.Equal(plan.Jobs.Length, plan.Jobs.Select(j => j.Id).Distinct().Count());
        Assert.All(Enumerable.Range(0, plan.Waves), wave => Assert.Equal(3, plan.Wave(wave).Count()));
    }

    [Theory]
    [InlineData(3, 6, 3)]
    [InlineData(5, 6, 3)]
    [InlineData(7, 10, 7)]
    public void Partitions_draw_each_link_fault_at_least_once_and_never_cut_a_majority_off(int nodes, int kills, int seed)
    {
        var options = new ChaosOptions { Seed = seed, Nodes = nodes, Kills = kills, Namespaces = true, Partitions = true };

        var plan = ChaosPlan.Create(options);

        Assert.Equal(kills, plan.Faults.Length);
        foreach (var kind in new[] { FaultKind.Cut, FaultKind.Split, FaultKind.OneWay })
            Assert.Contains(plan.Faults, f => f.Kind == kind);
        Assert.All(plan.Faults, f =>
        {
            Assert.InRange(f.Victims.Length, 1, (nodes - 1) / 2);
            if (f.Kind is FaultKind.Cut or FaultKind.OneWay) Assert.Single(f.Victims);
            if (f.Kind == FaultKind.OneWay)
            {
                var peer = Assert.Single(f.Peers);
                Assert.NotEqual(f.Victims[0], peer);
                Assert.Contains(peer, plan.Nodes);
            }
            else Assert.Empty(f.Peers);
            Assert.Equal(f.IsPartition, f.Kind is FaultKind.Cut or FaultKind.Split or FaultKind.OneWay);
            // A link fault lasts past detection and the resolver's wait; a kill does not need to.
            if (f.IsPartition) Assert.InRange(f.Down.TotalSeconds, ChaosPlan.PartitionSeconds, ChaosPlan.PartitionSeconds + 3);
        });
        Assert.Equal(Describe(plan), Describe(ChaosPlan.Create(options)));
    }

    [Fact]
    public void Without_partitions_a_seed_gives_the_plan_it_gave_before_partitions_existed()
    {
        // The draws of a plan without --partitions are untouched by them: the same victims, moments and downtimes.
        var plain = ChaosPlan.Create(new ChaosOptions { Seed = 1, Nodes = 3, Kills = 10 });

        Assert.All(plain.Faults, f => Assert.Equal(FaultKind.Kill, f.Kind));
        Assert.Equal("n1 n3 n3 n2 n1 n1 n2 n3 n1 n1", string.Join(' ', plain.Faults.Select(f => f.Victims.Single())));
    }

    [Theory]
    [InlineData("--partitions needs --netns", false, true, 3)]
    [InlineData("give --kills 1 or more", true, true, 0)]
    public void Partitions_need_namespaces_and_faults(string problem, bool netns, bool partitions, int kills)
    {
        var options = new ChaosOptions { Namespaces = netns, Partitions = partitions, Kills = kills };

        Assert.Contains(problem, options.Problem());
    }

    [Fact]
    public void Every_chaos_job_is_valid_shares_buffers_between_tasks_and_has_a_reference()
    {
        var plan = ChaosPlan.Create(new ChaosOptions { Seed = 3, Kills = 2 });

        foreach (var job in plan.Jobs)
        {
            Assert.Null(JobValidator.Validate(job.Spec, 256L << 20));
            var stages = JobPlan.Of(job.Spec);
            Assert.True(stages.Stages.Length >= 4, $"{job.Id} has {stages.Stages.Length} stages");
            // A mix task reads its neighbour's part: an input produced by another task.
            Assert.Equal<string>(["map0", "map1"], stages.Task("mix0").Inputs.Select(b => stages.Producer(b) ?? "").Order().ToArray());
            var outputs = JobReference.Evaluate(job.Spec);
            Assert.Equal(4, outputs["sum"].Length);
        }
    }
}
