using System.Collections.Immutable;

namespace Fabric.Core.Gateway;

/// <summary>
/// A job as the gateway answers it (<c>GET /jobs/{id}</c>) and the CLI shows it: status, progress per stage, every task's
/// placements, attempts and time (none with <c>?tasks=false</c>), the outputs' sizes.
/// </summary>
public sealed record JobView(
    string JobId,
    string Name,
    string Status,
    string? Error,
    int Runs,
    ImmutableArray<string> RunNodes,
    int Tasks,
    int CompletedTasks,
    ImmutableArray<JobView.TaskView> TaskDetails,
    ImmutableArray<JobView.OutputView> Outputs,
    DateTimeOffset? SubmittedAt,
    DateTimeOffset? FinishedAt,
    long Events,
    ImmutableArray<JobView.StageView> Stages = default)
{
    /// <summary>Progress per stage; empty when not given (a default array would not serialize).</summary>
    public ImmutableArray<StageView> Stages { get; init; } = Stages.IsDefault ? [] : Stages;

    /// <summary>One stage (tasks whose inputs come from earlier stages only): its tasks, and how many have completed.</summary>
    public sealed record StageView(int Stage, int Tasks, int Completed);

    public sealed record TaskView(string Name, int Stage, string Status, int Attempts, ImmutableArray<string> Placements,
        int Completions, int Recomputations, double Seconds, string? LastError, ImmutableArray<AttemptView> AttemptLog = default);

    /// <summary>
    /// One attempt: its node and device, start and end, and outcome — Running, Completed, Failed (with its error),
    /// NodeLost (its device's node was lost), RunLost (the job's node was lost), HandedOff (the job moved on
    /// purpose), Abandoned (the job failed meanwhile).
    /// </summary>
    public sealed record AttemptView(int Number, string Node, string Device, DateTimeOffset StartedAt, DateTimeOffset? EndedAt, string Outcome,
        string? Error);

    public sealed record OutputView(string Name, long Bytes);
}
