using Fabric.Core;

namespace Fabric.Node.Jobs;

/// <summary>
/// What a run does with a task attempt that failed: the job fails, or the task is placed again after a wait. Pure: the
/// same failure and counts, the same decision.
/// <list type="bullet">
/// <item>An error of the task's own (EINVAL, EFAULT, …) fails the job at once: running it again would fail again.</item>
/// <item>A transient one (ENODEV, EIO, ETIMEDOUT, EBUSY, ENOMEM: a node lost, a device busy or full) is retried, the
/// wait doubling from <see cref="JobRunOptions.Backoff"/> up to <see cref="JobRunOptions.MaxBackoff"/>.</item>
/// <item>A task with a limit of its own (<see cref="Fabric.Core.Jobs.TaskSpec.MaxAttempts"/>) gets that many attempts;
/// otherwise <see cref="JobRunOptions.MaxAttempts"/> failures that no lost node explains, and at most
/// <see cref="JobRunOptions.MaxAttemptsOnNodeLoss"/> attempts in all (repeated node loss may need more than the first).</item>
/// </list>
/// </summary>
public static class RetryPolicy
{
    /// <summary>Retry: place the task again, not before <paramref name="Wait"/> has passed; otherwise the job fails.</summary>
    public sealed record Decision(bool Retry, TimeSpan Wait)
    {
        public static readonly Decision GiveUp = new(false, TimeSpan.Zero);
    }

    public static bool IsTransient(FabricError error) =>
        error.Code is ErrorCode.ENODEV or ErrorCode.EIO or ErrorCode.ETIMEDOUT or ErrorCode.EBUSY or ErrorCode.ENOMEM;

    /// <param name="error">How the attempt failed.</param>
    /// <param name="attempts">The task's attempts so far, this one included.</param>
    /// <param name="unexplained">Its failures so far, this one included, that no lost node or context explained.</param>
    /// <param name="taskLimit">The task's own attempt limit; 0 for none.</param>
    /// <param name="options">The run's limits and waits.</param>
    public static Decision Decide(FabricError error, int attempts, int unexplained, int taskLimit, JobRunOptions options)
    {
        if (!IsTransient(error)) return Decision.GiveUp;
        var spent = taskLimit > 0
            ? attempts >= taskLimit
            : unexplained >= options.MaxAttempts || attempts >= options.MaxAttemptsOnNodeLoss;
        if (spent) return Decision.GiveUp;
        var backoff = options.Backoff * Math.Pow(2, Math.Min(attempts - 1, 8));
        return new Decision(true, backoff < options.MaxBackoff ? backoff : options.MaxBackoff);
    }
}
