using Fabric.Core.Gateway;
using Fabric.Core;
using Fabric.Node.Jobs;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Tests.Jobs;

/// <summary>The line each kind of job event becomes in a job's history (<see cref="JobHistory.Describe"/>).</summary>
public sealed class JobHistoryTests
{
    private static readonly DeviceId Dev = new("n2", 1);

    [Fact]
    public void Each_event_is_one_entry_of_its_kind_with_a_sentence_naming_its_task_device_attempt_and_error()
    {
        var spec = JobSamples.Diamond();
        var lost = new FabricError(ErrorCode.ENODEV, "node n3 was lost");
        var buffers = Enumerable.Range(0, 12).Select(i => $"b{i}").ToArray();
        var events = new (IJobEvent Event, string Kind, string Text)[]
        {
            (new Submitted("j1", spec, 10), "submitted", "job j1 (diamond) submitted: 4 tasks in 3 stages, 5 buffers"),
            (new RunStarted("akka.tcp://fabric@h:1", 11), "run-started", "a run of the job started on the node at akka.tcp://fabric@h:1"),
            (new TaskPlaced("left", Dev, 2, 12), "placed", "task left placed on n2/dev1 (attempt 2)"),
            (new TaskCompleted("left", Dev, 2, 1.5, 13), "completed", "task left completed on n2/dev1 in 1.500 s (attempt 2)"),
            (new TaskFailed("right", Dev, 1, lost, true, 14), "failed", "task right failed on n2/dev1 (attempt 1): ENODEV: node n3 was lost; it will be placed again"),
            (new TaskFailed("right", Dev, 3, lost, false, 15), "failed", "task right failed on n2/dev1 (attempt 3): ENODEV: node n3 was lost; it is not tried again"),
            (new BuffersLost([.. buffers], "node n3 was lost", 16), "lost", "12 buffers lost (b0, b1, b2, b3, b4, b5, b6, b7, b8, b9 and 2 more): node n3 was lost"),
            (new TaskRecomputed("left", Dev, 3, 0.25, 17), "recomputed", "task left ran again on n2/dev1 in 0.250 s (attempt 3) to recompute outputs lost with a node"),
            (new RunStopped("handed off", 18), "run-stopped", "the run stopped (handed off); the next run goes on from here"),
            (new Completed([new JobOutput("d", [], 4096)], 19), "job-completed", "the job completed with 1 output: d (4,096 bytes)"),
            (new Failed(lost, 20), "job-failed", "the job failed: ENODEV: node n3 was lost"),
            (new Cancelled(21), "cancelled", "the job was cancelled"),
        };

        var entries = events.Select((e, i) => JobHistory.Describe(i + 1, e.Event)).ToArray();

        Assert.Equal(events.Select((e, i) => new JobHistoryEntry(i + 1, 10 + i, e.Kind, e.Text)), entries);
    }
}
