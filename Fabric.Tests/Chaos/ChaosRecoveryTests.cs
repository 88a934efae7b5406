using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Node.Chaos;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Tests.Chaos;

public sealed class ChaosRecoveryTests
{
    private const string A1 = "akka.tcp://fabric@127.0.0.1:4053";
    private const string A2 = "akka.tcp://fabric@127.0.0.1:4054";
    private static readonly DeviceId N1 = new("n1", 0);
    private static readonly DeviceId N2 = new("n2", 0);

    private static ImmutableDictionary<string, ImmutableArray<JournalEntry>> Histories(params (string Job, IJobEvent[] Events)[] jobs) =>
        jobs.ToImmutableDictionary(j => j.Job, j => j.Events.Select((e, i) => new JournalEntry(i + 1, e)).ToImmutableArray());

    private static readonly Fabric.Core.Jobs.JobSpec Spec = ChaosJobs.Create("j", 1, parts: 2, n: 64);

    [Fact]
    public void A_task_running_on_the_victim_recovers_when_it_completes_elsewhere()
    {
        var histories = Histories(("j", [
            new Submitted("j", Spec, 1_000), new RunStarted(A1, 1_001),
            new TaskPlaced("map0", N1, 1, 1_002), new TaskPlaced("map1", N2, 1, 1_003),
            new TaskCompleted("map0", N1, 1, 0.1, 1_500),
            // the kill of n2 at 2 000; map0 (on n1) completing nothing of n2's work does not count
            new TaskFailed("map1", N2, 1, new FabricError(ErrorCode.ENODEV, "n2 lost"), true, 4_800),
            new TaskPlaced("mix0", N1, 1, 4_900), new TaskPlaced("map1", N1, 2, 5_000), new TaskCompleted("map1", N1, 2, 0.1, 5_600),
        ]));

        var outcome = ChaosRecovery.Of(["n2"], [A2], 2_000, histories);

        Assert.Equal(ChaosRecovery.TaskNode, outcome.Role);
        Assert.Equal(1, outcome.InterruptedTasks);
        Assert.Equal(3.6, outcome.RecoverySeconds!.Value, 3);
        Assert.Equal("j/map1", outcome.RecoveredBy);
    }

    [Fact]
    public void A_completion_stamped_after_the_fault_of_an_attempt_placed_before_it_is_not_the_recovery()
    {
        var histories = Histories(("j", [
            new Submitted("j", Spec, 1_000), new RunStarted(A1, 1_001),
            new TaskPlaced("map0", N2, 1, 1_002), new TaskPlaced("map1", N2, 1, 1_003),
            // the kill of n2 at 2 000: map0 had finished on n2 a moment before, its completion is recorded just after
            new TaskCompleted("map0", N2, 1, 0.1, 2_010),
            new TaskFailed("map1", N2, 1, new FabricError(ErrorCode.ENODEV, "n2 lost"), true, 2_020),
            new TaskPlaced("map1", N1, 2, 2_300), new TaskCompleted("map1", N1, 2, 0.1, 2_450),
        ]));

        var outcome = ChaosRecovery.Of(["n2"], [A2], 2_000, histories);

        Assert.Equal(ChaosRecovery.TaskNode, outcome.Role);
        Assert.Equal(2, outcome.InterruptedTasks);
        Assert.Equal(0.45, outcome.RecoverySeconds!.Value, 3);
        Assert.Equal("j/map1", outcome.RecoveredBy);
    }

    [Fact]
    public void A_job_whose_run_was_on_the_victim_recovers_at_the_first_completion_of_its_new_run()
    {
        var histories = Histories(
            ("j", [new Submitted("j", Spec, 1_000), new RunStarted(A2, 1_001), new TaskPlaced("map0", N1, 1, 1_100), new TaskCompleted("map0", N1, 1, 0.1, 1_500),
                new RunStarted(A1, 9_000), new TaskPlaced("map1", N1, 1, 9_100), new TaskCompleted("map1", N1, 1, 0.1, 9_900)]),
            ("done-before", [new Submitted("done-before", Spec, 100), new RunStarted(A2, 101), new Completed([], 900)]));

        var outcome = ChaosRecovery.Of(["n2"], [A2], 2_000, histories);

        Assert.Equal(ChaosRecovery.JobNode, outcome.Role);
        Assert.Equal(7.9, outcome.RecoverySeconds!.Value, 3);
    }

    [Fact]
    public void With_nothing_of_the_victim_running_the_next_completion_anywhere_is_reported()
    {
        var histories = Histories(("j", [
            new Submitted("j", Spec, 1_000), new RunStarted(A1, 1_001), new TaskPlaced("map0", N1, 1, 1_002), new TaskCompleted("map0", N1, 1, 0.1, 2_700),
        ]));

        var outcome = ChaosRecovery.Of(["n2"], [A2], 2_000, histories);

        Assert.Equal(ChaosRecovery.Idle, outcome.Role);
        Assert.Equal(0, outcome.InterruptedTasks);
        Assert.Equal(0.7, outcome.RecoverySeconds!.Value, 3);
    }
}
