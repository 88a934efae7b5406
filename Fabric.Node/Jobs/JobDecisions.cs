using Fabric.Core;
using Fabric.Core.Jobs;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Node.Jobs;

/// <summary>
/// What a job entity answers and decides from its state alone. Pure, so it is tested without an actor; the entity
/// (<see cref="JobEntityActor"/>) only chooses which of these its current state may use.
/// </summary>
internal static class JobDecisions
{
    /// <summary>Events between snapshots for a job of up to this many tasks (a wider job: as many as it has tasks).</summary>
    public const int SnapshotEvery = 200;

    /// <summary>
    /// The answer to a Start for a job that has a history: the same submission again (a retry after a lost answer) is
    /// accepted and starts nothing; another job under the same id is refused with EEXIST.
    /// </summary>
    public static IFabricMessage StartAgain(JobState state, JobSpec spec) =>
        state.Spec is not null && JobJson.WriteCompact(state.Spec).AsSpan().SequenceEqual(JobJson.WriteCompact(spec))
            ? new JobEntity.Accepted(state.JobId)
            : new FabricError(ErrorCode.EEXIST, $"job id {state.JobId} is taken by job '{state.Spec?.Name}'; submit '{spec.Name}' under another id");

    /// <summary>A Start that reached a job with no history after it expired → ETIMEDOUT, or null while it may start the job.</summary>
    public static FabricError? Expired(JobEntity.Start start, long nowMs) => start.ExpiresAtMs <= 0 || nowMs <= start.ExpiresAtMs ? null
        : new FabricError(ErrorCode.ETIMEDOUT, $"the submission of job {start.JobId} reached the job's node {nowMs - start.ExpiresAtMs} ms after it expired " +
                                               "(its gateway had already answered that it timed out); nothing was started: submit it again");

    /// <summary>
    /// The answer to a Cancel in a state that does not change: a job never submitted (ENOENT), one that has ended (EINVAL),
    /// one already cancelled (its summary again). Null for a running job: the entity cancels it.
    /// </summary>
    public static IFabricMessage? CancelAnswer(JobState state) => state.Status switch
    {
        JobStatus.Running => null,
        JobStatus.Unknown => new FabricError(ErrorCode.ENOENT, $"there is no job {state.JobId}"),
        JobStatus.Cancelled => Summary(state),
        _ => FabricError.Invalid($"job {state.JobId} has already {state.Status}; only a running job can be cancelled"),
    };

    /// <summary>The answer to <paramref name="get"/>: the <see cref="Summary"/>, or the brief one asked for.</summary>
    public static IFabricMessage Read(JobState state, JobEntity.Get get) => get.Brief ? JobBrief.Of(state) : Summary(state);

    /// <summary>The answer to Get: the state without output bytes (they can be large, and replies cross nodes: GetOutput reads them in chunks).</summary>
    public static JobState Summary(JobState state) => state with { Outputs = [.. state.Outputs.Select(o => o with { Data = [] })] };

    /// <summary>The answer to GetOutput: a chunk of an output of a completed job, or ENOENT saying why there is none.</summary>
    public static IFabricMessage Output(JobState state, JobEntity.GetOutput request)
    {
        var output = state.Outputs.FirstOrDefault(o => o.Name == request.Name);
        if (output is null)
        {
            return new FabricError(ErrorCode.ENOENT, state.Status switch
            {
                JobStatus.Unknown => $"there is no job {request.JobId}",
                JobStatus.Completed => $"job {request.JobId} has no output '{request.Name}' (outputs: {string.Join(", ", state.Outputs.Select(o => o.Name))})",
                _ => $"job {request.JobId} is {state.Status}: its outputs exist once it has completed",
            });
        }
        var offset = (int)Math.Clamp(request.Offset, 0, output.Data.Length);
        var length = Math.Clamp(request.Length, 0, output.Data.Length - offset);
        return new JobEntity.OutputChunk(output.Data.AsSpan(offset, length).ToArray(), output.Data.Length);
    }

    /// <summary>The event that ends a run: Failed with its error, or Completed with its outputs in name order.</summary>
    public static IJobEvent Outcome(JobRunResult result, long atMs) => result.Error is { } error
        ? new Failed(error, atMs)
        : new Completed([.. result.Outputs.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new JobOutput(kv.Key, kv.Value, kv.Value.Length))], atMs);

    /// <summary>
    /// Whether to save a snapshot, the last one taken after <paramref name="snapshotAt"/> events. A snapshot holds every
    /// task, so a wide job saves one per as many events as it has tasks: the cost of snapshots grows with the job, not
    /// with its square, and a recovery still replays at most that many events.
    /// </summary>
    public static bool SnapshotDue(JobState state, long snapshotAt) => state.Events - snapshotAt >= Math.Max(SnapshotEvery, state.Tasks.Count);
}

/// <summary>
/// The tasks of a job whose first completion has been recorded: those of the recovered state, and those recorded since,
/// persisted or not yet. Progress events are persisted asynchronously, so the state alone would take a task recomputed
/// at once (its holder lost just after it ran) for a first completion again before the first one's event is applied.
/// </summary>
internal sealed class FirstCompletions(JobState recovered)
{
    private readonly HashSet<string> _tasks = new(recovered.Tasks.Where(t => t.Completions > 0).Select(t => t.Name), StringComparer.Ordinal);

    /// <summary>The event to record for a task that succeeded: its first completion (counted once), or a recomputation.</summary>
    public IJobEvent Succeeded(string task, DeviceId device, int attempt, double seconds, long atMs) => _tasks.Add(task)
        ? new TaskCompleted(task, device, attempt, seconds, atMs)
        : new TaskRecomputed(task, device, attempt, seconds, atMs);
}
