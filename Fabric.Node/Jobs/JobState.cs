using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Core.Serialization;
using MessagePack;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Node.Jobs;

public enum JobStatus { Unknown = 0, Running = 1, Completed = 2, Failed = 3, Cancelled = 4 }

public enum TaskStatus { Waiting = 0, Placed = 1, Completed = 2, Failed = 3 }

/// <summary>How one attempt of a task ended.</summary>
public enum AttemptOutcome
{
    Running = 0,
    Completed = 1,
    /// <summary>Failed with an error of its own (or of a revoked import, a timeout …): see its error.</summary>
    Failed = 2,
    /// <summary>Its device's node was lost (ENODEV).</summary>
    NodeLost = 3,
    /// <summary>The job's own node was lost while it ran; the recovered run placed it again.</summary>
    RunLost = 4,
    /// <summary>The job's entity handed off to another node (its node left) and stopped the run.</summary>
    HandedOff = 5,
    /// <summary>The job ended (failed or cancelled) while it ran.</summary>
    Abandoned = 6,
}

/// <summary>One attempt of a task: where (its device, and so its node), when, and how it ended.</summary>
[MessagePackObject]
public sealed record TaskAttempt(
    [property: Key(0)] int Number,
    [property: Key(1)] DeviceId Device,
    [property: Key(2)] long StartedAtMs,
    [property: Key(3)] long EndedAtMs,
    [property: Key(4)] AttemptOutcome Outcome,
    [property: Key(5)] FabricError? Error);

/// <summary>One task as the job's history tells it; <paramref name="Log"/> holds each attempt.</summary>
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
    [property: Key(8)] FabricError? LastError,
    [property: Key(9)] ImmutableArray<TaskAttempt> Log = default)
{
    /// <summary>Ends attempt <paramref name="number"/> if it still runs.</summary>
    public TaskState End(int number, long atMs, AttemptOutcome outcome, FabricError? error = null) =>
        Log.IsDefaultOrEmpty ? this : this with
        {
            Log = [.. Log.Select(a => a.Number == number && a.Outcome == AttemptOutcome.Running
                ? a with { EndedAtMs = atMs, Outcome = outcome, Error = error } : a)],
        };

    /// <summary>Ends every attempt that still runs.</summary>
    public TaskState EndAll(long atMs, AttemptOutcome outcome) =>
        Log.IsDefaultOrEmpty || Log.All(a => a.Outcome != AttemptOutcome.Running) ? this
            : this with { Log = [.. Log.Select(a => a.Outcome == AttemptOutcome.Running ? a with { EndedAtMs = atMs, Outcome = outcome } : a)] };

    public TaskState Begin(int number, DeviceId device, long atMs) =>
        this with { Log = (Log.IsDefault ? [] : Log).Add(new TaskAttempt(number, device, atMs, 0, AttemptOutcome.Running, null)) };
}

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

    /// <summary>Each stage's tasks and completed tasks, in stage order.</summary>
    public ImmutableArray<StageProgress> Stages() =>
        [.. Tasks.GroupBy(t => t.Stage).OrderBy(g => g.Key).Select(g => new StageProgress(g.Key, g.Count(), g.Count(t => t.Completions > 0)))];

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
            RunStarted r => EndAll(r.AtMs, AttemptOutcome.RunLost) with { Runs = Runs + 1, RunNodes = RunNodes.Add(r.Node) },
            RunStopped r => EndAll(r.AtMs, AttemptOutcome.HandedOff),
            TaskPlaced p => Update(p.Task, t => t.Begin(p.Attempt, p.Device, p.AtMs) with
            {
                Status = TaskStatus.Placed, Attempts = t.Attempts + 1, Placements = t.Placements.Add(p.Device),
            }),
            TaskCompleted c => Update(c.Task, t => t.End(c.Attempt, c.AtMs, AttemptOutcome.Completed) with
            {
                Status = TaskStatus.Completed, Completions = t.Completions + 1, Seconds = c.Seconds,
            }),
            TaskRecomputed c => Update(c.Task, t => t.End(c.Attempt, c.AtMs, AttemptOutcome.Completed) with
            {
                Status = TaskStatus.Completed, Recomputations = t.Recomputations + 1, Seconds = c.Seconds,
            }),
            TaskFailed f => Update(f.Task, t => t.End(f.Attempt, f.AtMs, f.Error.Code == ErrorCode.ENODEV ? AttemptOutcome.NodeLost : AttemptOutcome.Failed, f.Error) with
            {
                Status = f.WillRetry ? TaskStatus.Waiting : TaskStatus.Failed, LastError = f.Error,
            }),
            BuffersLost => this,
            JobEvents.Completed c => this with { Status = JobStatus.Completed, Outputs = c.Outputs, FinishedAtMs = c.AtMs },
            JobEvents.Failed f => EndAll(f.AtMs, AttemptOutcome.Abandoned) with { Status = JobStatus.Failed, Error = f.Error, FinishedAtMs = f.AtMs },
            JobEvents.Cancelled c => EndAll(c.AtMs, AttemptOutcome.Abandoned) with
            {
                Status = JobStatus.Cancelled,
                Error = new FabricError(ErrorCode.ECANCELED, $"job {JobId} was cancelled with {CompletedTasks} of its {Tasks.Count} tasks completed"),
                FinishedAtMs = c.AtMs,
            },
            _ => this,
        };
        return next with { Events = Events + 1 };
    }

    /// <summary>Ends every running attempt of every task (a run that ended without their outcomes).</summary>
    private JobState EndAll(long atMs, AttemptOutcome outcome)
    {
        var tasks = Tasks;
        for (var i = 0; i < tasks.Count; i++)
            if (tasks[i].Status == TaskStatus.Placed) tasks = tasks.SetItem(i, tasks[i].EndAll(atMs, outcome));
        return this with { Tasks = tasks };
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

/// <summary>
/// A job's state without its spec and its tasks' records (<see cref="JobEntity.Get"/> with Brief): its status and counts,
/// a few hundred bytes however wide the job is. What a watcher polls while the job runs.
/// </summary>
[MessagePackObject]
[Manifest("JobBrief")]
public sealed record JobBrief(
    [property: Key(0)] string JobId,
    [property: Key(1)] string Name,
    [property: Key(2)] JobStatus Status,
    [property: Key(3)] FabricError? Error,
    [property: Key(4)] int Runs,
    [property: Key(5)] ImmutableArray<string> RunNodes,
    [property: Key(6)] int Tasks,
    [property: Key(7)] int CompletedTasks,
    [property: Key(8)] ImmutableArray<JobOutput> Outputs,
    [property: Key(9)] long SubmittedAtMs,
    [property: Key(10)] long FinishedAtMs,
    [property: Key(11)] long Events,
    [property: Key(12)] ImmutableArray<StageProgress> Stages) : IFabricMessage
{
    public static JobBrief Of(JobState state) => new(state.JobId, state.Spec?.Name ?? "", state.Status, state.Error, state.Runs, state.RunNodes,
        state.Tasks.Count, state.CompletedTasks, JobDecisions.Summary(state).Outputs, state.SubmittedAtMs, state.FinishedAtMs, state.Events,
        state.Stages());
}

/// <summary>One stage of a job: its tasks, and how many have completed (at least once).</summary>
[MessagePackObject]
public sealed record StageProgress([property: Key(0)] int Stage, [property: Key(1)] int Tasks, [property: Key(2)] int Completed);
