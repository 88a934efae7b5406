using System.Collections.Immutable;

namespace Fabric.Node.Jobs;

/// <summary>A job as the gateway and CLI show it: status, every task's placements, attempts and time, the outputs' sizes.</summary>
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
    long Events)
{
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

    public static JobView Of(JobState state) => new(
        state.JobId,
        state.Spec?.Name ?? "",
        state.Status.ToString(),
        state.Error?.ToString(),
        state.Runs,
        state.RunNodes,
        state.Tasks.Count,
        state.CompletedTasks,
        [.. state.Tasks.Select(t => new TaskView(t.Name, t.Stage, t.Status.ToString(), t.Attempts, [.. t.Placements.Select(p => p.ToString())],
            t.Completions, t.Recomputations, t.Seconds, t.LastError?.ToString(),
            [.. (t.Log.IsDefault ? [] : t.Log).Select(a => new AttemptView(a.Number, a.Device.Node, a.Device.ToString(),
                DateTimeOffset.FromUnixTimeMilliseconds(a.StartedAtMs), a.EndedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(a.EndedAtMs) : null,
                a.Outcome.ToString(), a.Error?.ToString()))]))],
        [.. state.Outputs.Select(o => new OutputView(o.Name, o.Size))],
        state.SubmittedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(state.SubmittedAtMs) : null,
        state.FinishedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(state.FinishedAtMs) : null,
        state.Events);
}
