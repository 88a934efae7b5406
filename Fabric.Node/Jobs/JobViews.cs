using Fabric.Core.Gateway;

namespace Fabric.Node.Jobs;

/// <summary>The <see cref="JobView"/> of a job's state, as the gateway answers it.</summary>
public static class JobViews
{
    public static JobView Of(JobState state) => new(
        state.JobId,
        state.Spec?.Name ?? "",
        state.Status.ToString(),
        state.Error?.ToString(),
        state.Runs,
        state.RunNodes,
        state.Tasks.Count,
        state.CompletedTasks,
        [.. state.Tasks.Select(t => new JobView.TaskView(t.Name, t.Stage, t.Status.ToString(), t.Attempts, [.. t.Placements.Select(p => p.ToString())],
            t.Completions, t.Recomputations, t.Seconds, t.LastError?.ToString(),
            [.. (t.Log.IsDefault ? [] : t.Log).Select(a => new JobView.AttemptView(a.Number, a.Device.Node, a.Device.ToString(),
                DateTimeOffset.FromUnixTimeMilliseconds(a.StartedAtMs), a.EndedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(a.EndedAtMs) : null,
                a.Outcome.ToString(), a.Error?.ToString()))]))],
        [.. state.Outputs.Select(o => new JobView.OutputView(o.Name, o.Size))],
        state.SubmittedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(state.SubmittedAtMs) : null,
        state.FinishedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(state.FinishedAtMs) : null,
        state.Events);
}
