using Akka.Actor;

namespace Fabric.Node.Jobs;

/// <summary>
/// Whether this node's job region has answered yet. On a new cluster the region first finds its coordinator (a
/// singleton on the oldest node) and the shard holding the job index loads its remembered entities from the journal;
/// until then a job request can time out. The node asks the index until it answers, and <c>GET /health</c> reports
/// <c>jobs: "starting"</c> until it has, <c>"ready"</c> after; whoever starts nodes and then submits waits for that.
/// </summary>
public sealed class JobsReadiness
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(500);
    private volatile bool _ready;

    public const string Ready = "ready";
    public const string Starting = "starting";

    public string State => _ready ? Ready : Starting;

    /// <summary>
    /// Asks the job index through <paramref name="region"/> until it answers, or <paramref name="cancel"/> ends it; ready
    /// once it has and <paramref name="journalWarm"/> (the node's first journal read) has ended.
    /// </summary>
    public async Task WatchAsync(IActorRef region, Task journalWarm, CancellationToken cancel)
    {
        await journalWarm;
        while (!cancel.IsCancellationRequested)
        {
            try
            {
                await region.Ask<JobIndex.Listing>(new JobIndex.List(), AskTimeout, cancel);
                _ready = true;
                return;
            }
            catch (AskTimeoutException) { }
            catch (OperationCanceledException) { return; }
            try { await Task.Delay(Pause, cancel); }
            catch (OperationCanceledException) { return; }
        }
    }
}
