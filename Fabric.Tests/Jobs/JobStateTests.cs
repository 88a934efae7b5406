using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Node.Jobs;
using static Fabric.Node.Jobs.JobEvents;
using TaskStatus = Fabric.Node.Jobs.TaskStatus;

namespace Fabric.Tests.Jobs;

/// <summary>JobState.Apply on its own: the state a job's history folds to, event by event.</summary>
public sealed class JobStateTests
{
    private static readonly DeviceId D0 = new("n1", 0), D1 = new("n2", 0);

    private static JobSpec TwoStages() => new JobBuilder("two").RandomInput("x", 4, seed: 1).Buffer("y", 16).Output("z", 16)
        .Task("first", t => t.Scale("y", "x", 2)).Task("second", t => t.Scale("z", "y", 3)).Build();

    private static JobState Fold(params IJobEvent[] events) => events.Aggregate(JobState.Empty("j"), (state, e) => state.Apply(e));

    [Fact]
    public void Submitted_lists_every_task_waiting_by_stage_and_counts_the_event()
    {
        var state = Fold(new Submitted("j", TwoStages(), 100));

        Assert.Equal(JobStatus.Running, state.Status);
        Assert.Equal(100, state.SubmittedAtMs);
        Assert.Equal(["first", "second"], state.Tasks.Select(t => t.Name));
        Assert.Equal([0, 1], state.Tasks.Select(t => t.Stage));
        Assert.All(state.Tasks, t => Assert.Equal(TaskStatus.Waiting, t.Status));
        Assert.Equal(1, state.Events);
    }

    [Fact]
    public void A_retried_failure_then_a_completion_keeps_each_attempt_and_one_completion()
    {
        var state = Fold(new Submitted("j", TwoStages(), 0), new RunStarted("n1", 1),
            new TaskPlaced("first", D0, 1, 10), new TaskFailed("first", D0, 1, new FabricError(ErrorCode.ENODEV, "lost"), true, 20),
            new TaskPlaced("first", D1, 2, 30), new TaskCompleted("first", D1, 2, 0.5, 40));
        var first = state.Tasks[0];

        Assert.Equal(TaskStatus.Completed, first.Status);
        Assert.Equal(2, first.Attempts);
        Assert.Equal(new[] { D0, D1 }, first.Placements.ToArray());
        Assert.Equal(1, first.Completions);
        Assert.Equal([AttemptOutcome.NodeLost, AttemptOutcome.Completed], first.Log.Select(a => a.Outcome));
        Assert.Equal(ErrorCode.ENODEV, first.LastError?.Code);
        Assert.Equal(TaskStatus.Waiting, state.Tasks[1].Status);
        Assert.Equal(6, state.Events);
    }

    [Fact]
    public void A_recomputation_is_not_a_second_completion_and_a_new_run_ends_attempts_the_old_one_left_running()
    {
        var state = Fold(new Submitted("j", TwoStages(), 0), new RunStarted("n1", 1),
            new TaskPlaced("first", D0, 1, 10), new TaskCompleted("first", D0, 1, 0.1, 20),
            new TaskPlaced("second", D0, 1, 30), new RunStarted("n2", 40),
            new TaskPlaced("first", D1, 2, 50), new TaskRecomputed("first", D1, 2, 0.1, 60));

        Assert.Equal(1, state.Tasks[0].Completions);
        Assert.Equal(1, state.Tasks[0].Recomputations);
        Assert.Equal(2, state.Runs);
        Assert.Equal(new[] { "n1", "n2" }, state.RunNodes.ToArray());
        Assert.Equal(AttemptOutcome.RunLost, state.Tasks[1].Log.Single().Outcome);
        Assert.Equal(40, state.Tasks[1].Log.Single().EndedAtMs);
    }

    [Fact]
    public void A_failed_job_abandons_what_still_ran_and_an_unknown_task_changes_nothing_but_the_count()
    {
        var placed = Fold(new Submitted("j", TwoStages(), 0), new RunStarted("n1", 1), new TaskPlaced("first", D0, 1, 10));
        var unknown = placed.Apply(new TaskPlaced("nope", D0, 1, 11));
        var failed = unknown.Apply(new JobEvents.Failed(new FabricError(ErrorCode.EIO, "broke"), 12));

        Assert.Equal(placed.Tasks, unknown.Tasks);
        Assert.Equal(placed.Events + 1, unknown.Events);
        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Equal(12, failed.FinishedAtMs);
        Assert.Equal(AttemptOutcome.Abandoned, failed.Tasks[0].Log.Single().Outcome);
        Assert.Equal("broke", failed.Error?.Message);
    }
}
