using System.Collections.Concurrent;
using System.Diagnostics;
using Fabric.Core.Telemetry;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Node.Jobs;

/// <summary>
/// What the job entities of this node tell the metrics: the state of each job they hold (read at each scrape for the
/// tasks-by-state gauge), the duration of each journal write, and the tasks that ran (durations, recomputations).
/// Replayed events are not counted again: only <see cref="Timed"/> writes record.
/// </summary>
internal static class JobMetrics
{
    private static readonly ConcurrentDictionary<string, JobState> Jobs = new(StringComparer.Ordinal);

    /// <summary>The jobs whose entities live on this node, in their latest state.</summary>
    public static IEnumerable<JobState> Hosted => Jobs.Values;

    public static void Track(JobState state)
    {
        if (state.Status != JobStatus.Unknown) Jobs[state.JobId] = state;
    }

    /// <summary>The entity that held <paramref name="state"/> stopped; a newer incarnation's state is kept.</summary>
    public static void Forget(JobState state) => Jobs.TryRemove(new KeyValuePair<string, JobState>(state.JobId, state));

    /// <summary>
    /// Wraps the handler of one journal write of <paramref name="count"/> events: each event it is called with is
    /// counted, and the write's duration recorded when the last is acknowledged.
    /// </summary>
    public static Action<IJobEvent> Timed(string jobId, int count, Action<IJobEvent> handler)
    {
        var started = Stopwatch.GetTimestamp();
        var left = count;
        return e =>
        {
            if (--left == 0) FabricMetrics.JournalWrite.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
            switch (e)
            {
                case TaskCompleted c: FabricMetrics.TaskDuration.Record(c.Seconds); break;
                case TaskRecomputed r:
                    FabricMetrics.TaskDuration.Record(r.Seconds);
                    FabricMetrics.Recomputations.Add(1, new KeyValuePair<string, object?>("job", jobId));
                    break;
            }
            handler(e);
        };
    }
}
