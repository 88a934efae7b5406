using System.Collections.Immutable;
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
        state.Events,
        Stages(state.Stages()));

    /// <summary>The view of a brief state: the same, with no task details.</summary>
    public static JobView Of(JobBrief brief) => new(brief.JobId, brief.Name, brief.Status.ToString(), brief.Error?.ToString(), brief.Runs, brief.RunNodes,
        brief.Tasks, brief.CompletedTasks, [], [.. brief.Outputs.Select(o => new JobView.OutputView(o.Name, o.Size))],
        brief.SubmittedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(brief.SubmittedAtMs) : null,
        brief.FinishedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(brief.FinishedAtMs) : null,
        brief.Events,
        Stages(brief.Stages));

    private static ImmutableArray<JobView.StageView> Stages(ImmutableArray<StageProgress> stages) =>
        [.. stages.Select(s => new JobView.StageView(s.Stage, s.Tasks, s.Completed))];
}
