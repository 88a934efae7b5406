using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Node.Jobs;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Tests.Jobs;

/// <summary>What a job entity answers and decides from its state, without an actor.</summary>
public sealed class JobDecisionsTests
{
    private static readonly DeviceId Dev = new("t", 0);

    private static JobState Submitted(JobSpec spec) => JobState.Empty("j1").Apply(new JobEvents.Submitted("j1", spec, 1)).Apply(new RunStarted("node", 2));

    private static JobState CompletedWith(params (string Name, byte[] Data)[] outputs) =>
        Submitted(JobSamples.Diamond()).Apply(new JobEvents.Completed([.. outputs.Select(o => new JobOutput(o.Name, o.Data, o.Data.Length))], 3));

    [Fact]
    public void The_same_submission_again_is_accepted_and_another_under_the_id_is_refused_with_EEXIST_naming_both()
    {
        var state = Submitted(JobSamples.Diamond());

        var again = JobDecisions.StartAgain(state, JobSamples.Diamond());
        var other = JobDecisions.StartAgain(state, JobSamples.ThreeStage());

        Assert.Equal(new JobEntity.Accepted("j1"), again);
        var error = Assert.IsType<FabricError>(other);
        Assert.Equal(ErrorCode.EEXIST, error.Code);
        Assert.Contains("j1", error.Message);
        Assert.Contains("'diamond'", error.Message);
        Assert.Contains("'three-stage'", error.Message);
    }

    [Fact]
    public void A_cancel_stops_a_running_job_is_answered_again_once_cancelled_and_is_refused_otherwise()
    {
        var running = Submitted(JobSamples.Diamond());
        var cancelled = running.Apply(new Cancelled(3));
        var completed = CompletedWith(("d", new byte[4]));
        var failed = running.Apply(new JobEvents.Failed(new FabricError(ErrorCode.ENOMEM, "no room"), 3));

        Assert.Null(JobDecisions.CancelAnswer(running));
        Assert.Equal((JobStatus.Cancelled, true, 3L), (cancelled.Status, cancelled.IsFinished, cancelled.FinishedAtMs));
        Assert.Equal(new FabricError(ErrorCode.ECANCELED, $"job j1 was cancelled with 0 of its {running.Tasks.Count} tasks completed"), cancelled.Error);
        Assert.Equal(JobStatus.Cancelled, Assert.IsType<JobState>(JobDecisions.CancelAnswer(cancelled)).Status);
        Assert.Equal(new FabricError(ErrorCode.ENOENT, "there is no job j1"), JobDecisions.CancelAnswer(JobState.Empty("j1")));
        Assert.Equal(FabricError.Invalid("job j1 has already Completed; only a running job can be cancelled"), JobDecisions.CancelAnswer(completed));
        Assert.Equal(FabricError.Invalid("job j1 has already Failed; only a running job can be cancelled"), JobDecisions.CancelAnswer(failed));
    }

    [Fact]
    public void A_summary_keeps_each_output_with_its_size_and_without_its_bytes()
    {
        var state = CompletedWith(("d", new byte[64]), ("e", new byte[8]));

        var summary = JobDecisions.Summary(state);

        Assert.Equal([("d", 64L, 0), ("e", 8L, 0)], summary.Outputs.Select(o => (o.Name, o.Size, o.Data.Length)));
        Assert.Equal(64, state.Outputs[0].Data.Length); // the entity's own state keeps them
        Assert.Equal(state.Events, summary.Events);
    }

    [Fact]
    public void GetOutput_reads_a_chunk_clamped_to_the_output()
    {
        var data = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        var state = CompletedWith(("d", data));

        var middle = Assert.IsType<JobEntity.OutputChunk>(JobDecisions.Output(state, new JobEntity.GetOutput("j1", "d", 10, 5)));
        var tail = Assert.IsType<JobEntity.OutputChunk>(JobDecisions.Output(state, new JobEntity.GetOutput("j1", "d", 95, 50)));
        var past = Assert.IsType<JobEntity.OutputChunk>(JobDecisions.Output(state, new JobEntity.GetOutput("j1", "d", 500, 50)));

        Assert.Equal(new byte[] { 10, 11, 12, 13, 14 }, middle.Data);
        Assert.Equal(100, middle.Total);
        Assert.Equal(new byte[] { 95, 96, 97, 98, 99 }, tail.Data);
        Assert.Empty(past.Data);
    }

    [Fact]
    public void GetOutput_without_that_output_is_ENOENT_saying_why_in_each_status()
    {
        var unknown = JobState.Empty("j1");
        var running = Submitted(JobSamples.Diamond());
        var failed = running.Apply(new JobEvents.Failed(new FabricError(ErrorCode.ENOMEM, "no room"), 3));
        var completed = CompletedWith(("d", new byte[4]));

        string Why(JobState state)
        {
            var error = Assert.IsType<FabricError>(JobDecisions.Output(state, new JobEntity.GetOutput("j1", "x", 0, 4)));
            Assert.Equal(ErrorCode.ENOENT, error.Code);
            return error.Message;
        }

        Assert.Equal("there is no job j1", Why(unknown));
        Assert.Equal("job j1 is Running: its outputs exist once it has completed", Why(running));
        Assert.Equal("job j1 is Failed: its outputs exist once it has completed", Why(failed));
        Assert.Equal("job j1 has no output 'x' (outputs: d)", Why(completed));
    }

    [Fact]
    public void A_run_ends_Failed_with_its_error_or_Completed_with_its_outputs_in_name_order()
    {
        var error = new FabricError(ErrorCode.EIO, "broke");
        var outputs = ImmutableDictionary<string, byte[]>.Empty.Add("z", [1]).Add("a", [2, 3]).Add("m", []);

        var failed = Assert.IsType<JobEvents.Failed>(JobDecisions.Outcome(new JobRunResult(error, outputs), 7));
        var completed = Assert.IsType<JobEvents.Completed>(JobDecisions.Outcome(new JobRunResult(null, outputs), 8));

        Assert.Equal((error, 7L), (failed.Error, failed.AtMs));
        Assert.Equal([("a", 2L), ("m", 0L), ("z", 1L)], completed.Outputs.Select(o => (o.Name, o.Size)));
        Assert.Equal(8, completed.AtMs);
    }

    [Theory]
    [InlineData(4, 0, 199, false)]
    [InlineData(4, 0, 200, true)]
    [InlineData(4, 200, 399, false)]
    [InlineData(4, 200, 400, true)]
    [InlineData(500, 0, 499, false)]
    [InlineData(500, 0, 500, true)]
    public void A_snapshot_is_due_every_200_events_or_every_as_many_events_as_the_job_has_tasks(int tasks, long snapshotAt, long events, bool due)
    {
        var state = JobState.Empty("j1") with { Tasks = [.. Enumerable.Range(0, tasks).Select(i => new TaskState($"t{i}", 0, Fabric.Node.Jobs.TaskStatus.Waiting, 0, [], 0, 0, 0, null))], Events = events };

        Assert.Equal(due, JobDecisions.SnapshotDue(state, snapshotAt));
    }

    [Fact]
    public void A_task_that_succeeds_again_before_its_first_completion_is_applied_is_a_recomputation()
    {
        var completions = new FirstCompletions(Submitted(JobSamples.Diamond()));

        var first = completions.Succeeded("top", Dev, 1, 0.5, 10);
        var again = completions.Succeeded("top", Dev, 2, 0.4, 11); // its holder was lost: it ran again before 'first' was persisted
        var other = completions.Succeeded("left", Dev, 1, 0.1, 12);

        Assert.Equal(new TaskCompleted("top", Dev, 1, 0.5, 10), first);
        Assert.Equal(new TaskRecomputed("top", Dev, 2, 0.4, 11), again);
        Assert.IsType<TaskCompleted>(other);
    }

    [Fact]
    public void A_task_completed_before_a_recovery_is_a_recomputation_after_it()
    {
        var recovered = Submitted(JobSamples.Diamond()).Apply(new TaskCompleted("top", Dev, 1, 0.5, 10));

        var completions = new FirstCompletions(recovered);

        Assert.IsType<TaskRecomputed>(completions.Succeeded("top", Dev, 2, 0.5, 20));
        Assert.IsType<TaskCompleted>(completions.Succeeded("left", Dev, 1, 0.5, 21));
    }
}
