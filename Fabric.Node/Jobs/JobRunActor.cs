using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Jobs;
using static Fabric.Node.Jobs.JobRunReports;

namespace Fabric.Node.Jobs;

/// <summary>
/// One run of a job, as a child of its <see cref="JobEntityActor"/>: a single thread of control. The run's steps
/// (<see cref="JobRun"/>) are async, and they run on this actor's own task scheduler: every continuation of theirs is
/// one of this actor's (system) messages, taken one at a time, so the run's state needs no lock, however many device
/// batches are under way. News of lost and returning nodes reaches the run through its client.
/// <para>
/// It tells its parent <see cref="RunFinished"/> once, when the run ends (cancelled through its token: it unwinds and
/// closes its contexts first), and stops. Stopped before that (its entity stopping), it says the run is over
/// (<see cref="Ended"/> completes), so that the entity's handle disposes its client, closing its contexts.
/// </para>
/// </summary>
internal sealed class JobRunActor : ReceiveActor
{
    private readonly TaskCompletionSource _ended;
    private bool _reported;

    private sealed record Begin;

    public JobRunActor(JobSpec spec, FabricClient client, IJobRunEvents events, JobRunOptions options, CancellationToken cancel, TaskCompletionSource ended)
    {
        _ended = ended;
        ReceiveAsync<Begin>(async _ =>
        {
            JobRunResult result;
            try { result = await new JobRun(spec, client, events, options).RunAsync(cancel); }
            catch (Exception e)
            {
                result = new JobRunResult(new FabricError(ErrorCode.EIO, $"the run of job {spec.Name} broke: {e.Message}"), ImmutableDictionary<string, byte[]>.Empty);
            }
            Report(result);
            Context.Stop(Self);
        });
    }

    /// <param name="ended">Completed when the run is over (it ended, or this actor stopped): then its client may go.</param>
    public static Props Props(JobSpec spec, FabricClient client, IJobRunEvents events, JobRunOptions options, CancellationToken cancel, TaskCompletionSource ended) =>
        Akka.Actor.Props.Create(() => new JobRunActor(spec, client, events, options, cancel, ended));

    protected override void PreStart() => Self.Tell(new Begin());

    protected override void PostStop()
    {
        // Stopped mid-run (a failure, or its entity stopping): the run will not go on, and its parent hears of it.
        Report(new JobRunResult(new FabricError(ErrorCode.EIO, "the run stopped before it ended"), ImmutableDictionary<string, byte[]>.Empty));
        _ended.TrySetResult();
    }

    private void Report(JobRunResult result)
    {
        if (_reported) return;
        _reported = true;
        Context.Parent.Tell(new RunFinished(result));
        _ended.TrySetResult();
    }
}
