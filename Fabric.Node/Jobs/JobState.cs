using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Core.Serialization;
using MessagePack;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Node.Jobs;

public enum JobStatus { Unknown = 0, Running = 1, Completed = 2, Failed = 3, Cancelled = 4 }

public enum TaskStatus { Waiting = 0, Placed = 1, Completed = 2, Failed = 3 }

/// <summary>One task as the job's history tells it.</summary>
[MessagePackObject]
public sealed record TaskState(
    [property: Key(0)] string Name,
    [property: Key(1)] int Stage,
    [property: Key(2)] TaskStatus Status,
    [property: Key(3)] int Attempts,
    [property: Key(4)] ImmutableArray<DeviceId> Placements,
    [property: Key(5)] int Completions,
    [property: Key(6)] int Recomputations,
    [property: Key(7)] double Seconds,
    [property: Key(8)] FabricError? LastError);

/// <summary>
/// A job's state: pure, rebuilt by <see cref="Apply"/> from its events (and saved as a snapshot so recovery does not
/// replay forever). Tasks is a tree-backed list, so the event that changes one task of a wide job does not copy all.
/// </summary>
[MessagePackObject]
[Manifest("JobState")]
public sealed record JobState(
    [property: Key(0)] string JobId,
    [property: Key(1)] JobSpec? Spec,
    [property: Key(2)] JobStatus Status,
    [property: Key(3)] ImmutableList<TaskState> Tasks,
    [property: Key(4)] ImmutableArray<JobOutput> Outputs,
    [property: Key(5)] FabricError? Error,
    [property: Key(6)] int Runs,
    [property: Key(7)] long SubmittedAtMs,
    [property: Key(8)] long FinishedAtMs,
    [property: Key(9)] long Events,
    [property: Key(10)] ImmutableArray<string> RunNodes) : IFabricMessage
{
    public static JobState Empty(string jobId) => new(jobId, null, JobStatus.Unknown, [], [], null, 0, 0, 0, 0, []);

    [IgnoreMember] public bool IsFinished => Status is JobStatus.Completed or JobStatus.Failed or JobStatus.Cancelled;
    [IgnoreMember] public int CompletedTasks => Tasks.Count(t => t.Completions > 0);

    public JobState Apply(IJobEvent e)
    {
        var next = e switch
        {
            Submitted s => this with
            {
                Spec = s.Spec,
                Status = JobStatus.Running,
                SubmittedAtMs = s.AtMs,
                Tasks = [.. JobPlan.Of(s.Spec).Stages.SelectMany((stage, i) => stage.Select(t => new TaskState(t.Name, i, TaskStatus.Waiting, 0, [], 0, 0, 0, null)))],
            },
            RunStarted r => this with { Runs = Runs + 1, RunNodes = RunNodes.Add(r.Node) },
            TaskPlaced p => Update(p.Task, t => t with { Status = TaskStatus.Placed, Attempts = t.Attempts + 1, Placements = t.Placements.Add(p.Device) }),
            TaskCompleted c => Update(c.Task, t => t with { Status = TaskStatus.Completed, Completions = t.Completions + 1, Seconds = c.Seconds }),
            TaskRecomputed c => Update(c.Task, t => t with { Status = TaskStatus.Completed, Recomputations = t.Recomputations + 1, Seconds = c.Seconds }),
            TaskFailed f => Update(f.Task, t => t with { Status = f.WillRetry ? TaskStatus.Waiting : TaskStatus.Failed, LastError = f.Error }),
            BuffersLost => this,
            JobEvents.Completed c => this with { Status = JobStatus.Completed, Outputs = c.Outputs, FinishedAtMs = c.AtMs },
            JobEvents.Failed f => this with { Status = JobStatus.Failed, Error = f.Error, FinishedAtMs = f.AtMs },
            JobEvents.Cancelled c => this with
            {
                Status = JobStatus.Cancelled,
                Error = new FabricError(ErrorCode.ECANCELED, $"job {JobId} was cancelled with {CompletedTasks} of its {Tasks.Count} tasks completed"),
                FinishedAtMs = c.AtMs,
            },
            _ => this,
        };
        return next with { Events = Events + 1 };
    }

    private JobState Update(string task, Func<TaskState, TaskState> change)
    {
        var index = IndexOf(task);
        return index < 0 ? this : this with { Tasks = Tasks.SetItem(index, change(Tasks[index])) };
    }

    // Where each task is in Tasks. A wide job records several events per task, so finding one by a scan would make a job's
    // history quadratic in its tasks. The order of Tasks never changes once submitted, so the states that follow
    // (copies made by `with`) share one index; a lookup that does not match rebuilds it.
    private Dictionary<string, int>? _index;

    private int IndexOf(string task)
    {
        if (_index is null || !_index.TryGetValue(task, out var i) || i >= Tasks.Count || Tasks[i].Name != task)
        {
            _index = new Dictionary<string, int>(Tasks.Count, StringComparer.Ordinal);
            for (var k = 0; k < Tasks.Count; k++) _index.TryAdd(Tasks[k].Name, k);
            if (!_index.TryGetValue(task, out i)) return -1;
        }
        return i;
    }
}
