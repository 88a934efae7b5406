using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Node.Cluster;
using static Fabric.Node.Jobs.JobEvents;
using static Fabric.Node.Jobs.JobRunReports;

namespace Fabric.Node.Jobs;

/// <summary>
/// The actor behind <see cref="JobEntity"/>: one method per state, switched with Become.
/// <code>
///                 ┌─────────────── Recovering ────────────────┐   replays the journal; Akka holds requests
///      no history │                     │ Running             │ Completed | Failed | Cancelled
///                 ▼                     ▼                     ▼
///                New ──Start──────▶  Running ──run ended──▶  Ended
///                 │    Submitted     RunStarted:   or Cancel: │
///                 │                  a run         Cancelled  │
///  Get, GetOutput │                                           │ no request for 20 s
///       Passivate ▼                                           │ Passivate
///              Stopping ◀─────────────────────────────────────┘
///                 │ Rest, the shard's answer: Starts held meanwhile go back to the shard
///                 ▼
///              stopped ──the next request: the shard starts it again──▶ Recovering
/// </code>
/// Each entry into Running starts a run (after a recovery, one that recomputes what the old node held). The shard may
/// hand it off (its node leaves): the run stops, HandingOff answers reads until the writes in flight are done, then
/// stops; a running job, remembered by the shard, recovers elsewhere after this incarnation's last write. Persist (of Submitted, RunStarted, the outcome or Cancelled) holds every request
/// until it is written (Akka's own stash); Stopping has the one stash of this actor's own, bounded by <see cref="StashLimit"/>.
/// </summary>
internal sealed class JobEntityActor : ReceivePersistentActor, IWithTimers
{
    /// <summary>Submissions a stopping job with no history holds for its next start; more are refused with EBUSY.</summary>
    internal const int StashLimit = 100;
    /// <summary>How often a stopping entity asks the shard again (it ignores a Passivate while it holds messages for it).</summary>
    private static readonly TimeSpan AskRestEvery = TimeSpan.FromSeconds(5);

    private readonly IActorRef _deviceManager;
    private readonly JobRunOptions _options;
    private readonly TimeSpan _idleAfterEnd;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private JobState State { get; set { field = value; JobMetrics.Track(value); } } // what the metrics read too
    private long _snapshotAt;
    private FirstCompletions _firstCompletions;
    private RunHandle? _run; // the run under way (Running only): stopped when it ends or the actor stops

    /// <summary>The stop message the shard sends back for Passivate. Not a PoisonPill: it waits its turn behind a Persist.</summary>
    private sealed record Rest : INoSerializationVerificationNeeded;
    private sealed record AskRestAgain : INoSerializationVerificationNeeded;

    public JobEntityActor(string jobId, IActorRef deviceManager, JobRunOptions options, TimeSpan idleAfterEnd)
    {
        (_deviceManager, _options, _idleAfterEnd) = (deviceManager, options, idleAfterEnd);
        State = JobState.Empty(jobId);
        _firstCompletions = new FirstCompletions(State);
        PersistenceId = $"job-{jobId}";
        Recovering();
    }

    public override string PersistenceId { get; }

    /// <summary>A run that throws is stopped (it reports how it ended as it stops), never restarted: a restart would run the job twice.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => Akka.Actor.SupervisorStrategy.StoppingStrategy;
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Rebuilds the state from the latest snapshot and the events after it, then enters the state its status names.</summary>
    private void Recovering()
    {
        Recover<SnapshotOffer>(offer => State = offer.Snapshot as JobState ?? State);
        Recover<IJobEvent>(e => State = State.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            _snapshotAt = State.Events;
            _firstCompletions = new FirstCompletions(State);
            switch (State.Status)
            {
                case JobStatus.Unknown: Become(New); break;
                case JobStatus.Running: Become(Running); break;
                default: Become(Ended); break;
            }
        });
    }

    /// <summary>No history: a Start submits the job; a question about it is answered, and the entity stops, keeping nothing.</summary>
    private void New()
    {
        Command<JobEntity.Start>(m =>
        {
            if (JobDecisions.Expired(m, Now()) is { } expired) { AnswerAndStop(expired); return; }
            var replyTo = Sender;
            Persist(new Submitted(m.JobId, m.Spec, Now()), e =>
            {
                State = State.Apply(e);
                replyTo.Tell(new JobEntity.Accepted(State.JobId));
                Become(Running);
            });
        });
        Command<JobEntity.Get>(m => AnswerAndStop(JobDecisions.Read(State, m)));
        Command<JobEntity.GetOutput>(m => AnswerAndStop(JobDecisions.Output(State, m)));
        Command<JobEntity.Cancel>(_ => AnswerAndStop(JobDecisions.CancelAnswer(State)!));
        Housekeeping();
    }

    /// <summary>Answers a question of a job with no history, then stops: it keeps nothing.</summary>
    private void AnswerAndStop(object answer) { Sender.Tell(answer); Become(Stopping); }

    /// <summary>
    /// A run is under way. On entry: RunStarted is persisted (requests wait in Akka's stash until it is), then the run
    /// starts. Its reports become events, and news of lost and returning nodes goes to its client.
    /// </summary>
    private void Running()
    {
        var node = Akka.Cluster.Cluster.Get(Context.System).SelfAddress.ToString();
        if (State.Runs > 0) _log.Info("job {0} recovered from its journal ({1} events, {2} run(s) before): run {3} starts here", State.JobId, State.Events, State.Runs, State.Runs + 1);
        Persist(new RunStarted(node, Now()), e =>
        {
            State = State.Apply(e);
            var cancel = new CancellationTokenSource();
            var client = FabricClient.Connect(Context.System, _deviceManager, new FabricClientOptions { RequestTimeout = TimeSpan.FromSeconds(30) });
            var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Context.Watch(Context.ActorOf(JobRunActor.Props(State.Spec!, client, new JobRunReports.ToEntity(Self), _options, cancel.Token, ended), $"run-{State.Runs}"));
            _run = new RunHandle(cancel, ended.Task, client);
        });
        Command<JobEntity.Start>(m => Sender.Tell(JobDecisions.StartAgain(State, m.Spec)));
        Command<JobEntity.Get>(m => Sender.Tell(JobDecisions.Read(State, m)));
        Command<JobEntity.GetOutput>(m => Sender.Tell(JobDecisions.Output(State, m)));
        Command<RunEvent>(m => Record([m.Event]));
        Command<RunEvents>(m => Record(m.Events));
        Command<TaskSucceeded>(m => Record([_firstCompletions.Succeeded(m.Task, m.Device, m.Attempt, m.Seconds, Now())]));
        Command<TasksSucceeded>(m => Record([.. m.Tasks.Select(t => _firstCompletions.Succeeded(t.Task, t.Device, t.Attempt, t.Seconds, Now()))]));
        Command<RunFinished>(m =>
        {
            EndRun();
            PersistEnd(JobDecisions.Outcome(m.Outcome, Now()), replyTo: null);
        });
        // Its run stopped without a word (it could not even start): the job ends as a broken run rather than hang.
        Command<Terminated>(_ => Self.Tell(new RunFinished(new JobRunResult(new FabricError(ErrorCode.EIO, "the job's run stopped before it ended"), []))));
        Command<JobEntity.Cancel>(_ =>
        {
            EndRun(); // its contexts close once the run has stopped: the device memory they held is released
            PersistEnd(new Cancelled(Now()), Sender);
        });
        Command<ClusterEvent.UnreachableMember>(m =>
            _run?.Client.NodeUnreachable(m.Member.Address, "the cluster's failure detector lost it; its tasks run again elsewhere"));
        Command<NodeRegistry.NodeLost>(m => _run?.Client.NodeUnreachable(m.Address, "the cluster lost it; its tasks run again elsewhere", m.Node));
        Command<NodeRegistry.NodeAvailable>(m => _run?.Client.NodeReturned(m.Address, m.Node));
        Housekeeping();
    }

    /// <summary>Persists how the job ended (an outcome, or a cancel answered to <paramref name="replyTo"/>); Ended. The snapshot comes
    /// first, so a job's outputs are stored once: in its Completed event, which a recovery replays after the snapshot.</summary>
    private void PersistEnd(IJobEvent end, IActorRef? replyTo)
    {
        SaveSnapshot(State);
        Persist(end, e =>
        {
            State = State.Apply(e);
            _log.Info("job {0} {1} after {2} runs", State.JobId, State.Status, State.Runs);
            replyTo?.Tell(JobDecisions.Summary(State));
            Become(Ended);
        });
    }

    /// <summary>Progress events are persisted without holding up the entity, those reported together in one write: a wide job
    /// reports thousands, and a lost one is harmless — the run that follows a crash recomputes what it cannot prove done.</summary>
    private void Record(IReadOnlyList<IJobEvent> events) => PersistAllAsync(events, JobMetrics.Timed(State.JobId, events.Count, persisted =>
    {
        State = State.Apply(persisted);
        if (!JobDecisions.SnapshotDue(State, _snapshotAt)) return;
        _snapshotAt = State.Events;
        SaveSnapshot(State);
    }));

    /// <summary>
    /// Completed, Failed or Cancelled: it answers from its state, and needs no news of nodes. It stops (passivates) once nobody has
    /// asked about it for the idle time; so it leaves the shard's remembered entities, and a shard that moves after a
    /// node loss restarts only the jobs still running. Asked again later, it recovers (its last snapshot and its end event).
    /// </summary>
    private void Ended()
    {
        Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
        Context.SetReceiveTimeout(_idleAfterEnd);
        Command<JobEntity.Start>(m => Sender.Tell(JobDecisions.StartAgain(State, m.Spec)));
        Command<JobEntity.Get>(m => Sender.Tell(JobDecisions.Read(State, m)));
        Command<JobEntity.GetOutput>(m => Sender.Tell(JobDecisions.Output(State, m)));
        Command<JobEntity.Cancel>(_ => Sender.Tell(JobDecisions.CancelAnswer(State)!));
        Command<IProgress>(_ => { }); // what a cancelled run still reported on its way out: nothing to record any more
        Command<RunFinished>(_ => { });
        Command<ReceiveTimeout>(_ => Become(Stopping));
        Housekeeping();
    }

    /// <summary>
    /// On entry: asks the shard to stop this entity (Passivate), again every few seconds until it answers with Rest; then
    /// the shard holds this job's messages until the actor has stopped, and starts it again for them. Meanwhile questions
    /// are answered from the state (New or Ended: nothing changes it). A Start for a job with no history is stashed and
    /// handed back to the shard with Rest (its run would end with the stop), so that the next incarnation serves it.
    /// </summary>
    private void Stopping()
    {
        Context.SetReceiveTimeout(null);
        Context.Parent.Tell(new Passivate(new Rest()));
        Timers.StartPeriodicTimer(nameof(AskRestAgain), new AskRestAgain(), AskRestEvery);
        Command<JobEntity.Start>(m =>
        {
            if (State.Status != JobStatus.Unknown) Sender.Tell(JobDecisions.StartAgain(State, m.Spec));
            else if (Stash.Count < StashLimit) Stash.Stash();
            else Sender.Tell(new FabricError(ErrorCode.EBUSY,
                $"job {m.JobId} is stopping and holds {StashLimit} submissions for its next start already; submit it again"));
        });
        Command<JobEntity.Get>(m => Sender.Tell(JobDecisions.Read(State, m)));
        Command<JobEntity.GetOutput>(m => Sender.Tell(JobDecisions.Output(State, m)));
        Command<JobEntity.Cancel>(_ => Sender.Tell(JobDecisions.CancelAnswer(State)!));
        Command<Rest>(_ =>
        {
            foreach (var held in Stash.ClearStash()) Context.Parent.Tell(held.Message, held.Sender);
            Context.Stop(Self);
        });
        Command<AskRestAgain>(_ => Context.Parent.Tell(new Passivate(new Rest())));
        Housekeeping();
    }

    /// <summary>
    /// What every state takes without a change: news of nodes no run needs, and the snapshot store's replies. Registered
    /// last, so a state's own handlers for the same messages (Running's news for its run) come first.
    /// </summary>
    private void Housekeeping()
    {
        Command<JobEntity.HandOff>(_ => HandOff());
        Command<Terminated>(_ => { }); // a run that ended (it said so before it stopped)
        Command<ClusterEvent.IClusterDomainEvent>(_ => { });
        Command<NodeRegistry.NodeLost>(_ => { });
        Command<NodeRegistry.NodeAvailable>(_ => { });
        // Only the latest snapshot is kept: each holds every task, and recovery reads the latest alone.
        Command<SaveSnapshotSuccess>(m => DeleteSnapshots(new SnapshotSelectionCriteria(m.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("job {0}: snapshot not saved: {1}", State.JobId, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning("job {0}: older snapshots not deleted: {1}", State.JobId, f.Cause.Message));
    }

    /// <summary>
    /// The shard hands this entity off: the run stops, and the entity stops once the events already on their way are
    /// written (DeferAsync runs after them). Messages held for a next start go back to the shard, for the next incarnation.
    /// </summary>
    private void HandOff()
    {
        if (_run is not null) Record([new RunStopped("handed off: the job's node is leaving", JobRunReports.Now())]);
        EndRun();
        foreach (var held in Stash.ClearStash()) Context.Parent.Tell(held.Message, held.Sender);
        Become(HandingOff);
        DeferAsync(JobEntity.HandOff.Instance, _ =>
        {
            _log.Info("job {0} handed off after {1} events", State.JobId, State.Events);
            Context.Stop(Self);
        });
    }

    /// <summary>Waiting for its last writes before it stops: a run's late reports are dropped (the run is cancelled).</summary>
    private void HandingOff()
    {
        Command<IProgress>(_ => { });
        Command<RunFinished>(_ => { });
        Command<JobEntity.Get>(m => Sender.Tell(JobDecisions.Read(State, m)));
        Command<JobEntity.GetOutput>(m => Sender.Tell(JobDecisions.Output(State, m)));
        Command<JobEntity.Start>(m => Sender.Tell(State.Status != JobStatus.Unknown ? JobDecisions.StartAgain(State, m.Spec)
            : new FabricError(ErrorCode.EBUSY, $"job {m.JobId} is moving to another node; submit it again")));
        Command<JobEntity.HandOff>(_ => { });
        Housekeeping();
    }

    /// <summary>Cancels the run if it is still going (its client is disposed once the run has released its contexts).</summary>
    private void EndRun() { _run?.Stop(); _run = null; }

    protected override void PreStart()
    {
        base.PreStart();
        // From the start, so that news that comes while the journal is replayed waits (Akka's stash) for the run.
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.UnreachableMember));
        Context.System.EventStream.Subscribe(Self, typeof(NodeRegistry.NodeLost));
        Context.System.EventStream.Subscribe(Self, typeof(NodeRegistry.NodeAvailable));
    }

    protected override void PostStop()
    {
        Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
        EndRun();
        JobMetrics.Forget(State);
        base.PostStop();
    }
}
