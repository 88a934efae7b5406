using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Jobs;
using Fabric.Node.Cluster;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Node.Jobs;

/// <summary>
/// The actor behind <see cref="JobEntity"/>.
/// <code>
///   (no history) ──Start──▶ Running ──run finished──▶ Completed | Failed ──nobody asks for 20 s──▶ passivated
///                             ▲  │                                    ▲                                  │
///   recovered on a new node ──┘  │                                    └──── asked again: recovered ──────┘
///                                └── each recovery while Running starts a new run (lost buffers are recomputed)
/// </code>
/// </summary>
internal sealed class JobEntityActor : ReceivePersistentActor
{
    private const int SnapshotEvery = 200;
    private static readonly TimeSpan IdleAfterEnd = TimeSpan.FromSeconds(20);
    private readonly IActorRef _deviceManager;
    private readonly JobRunOptions _options;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private JobState _state;
    private long _snapshotAt;

    // Tasks whose first completion has been recorded: those recovered, and those recorded since, persisted or not yet.
    // Events are persisted asynchronously, so the state alone would take a task recomputed at once (its holder lost just
    // after it ran) for a first completion again before the first one's event is applied.
    private readonly HashSet<string> _firstCompletions = new(StringComparer.Ordinal);
    private CancellationTokenSource? _run;
    private FabricClient? _client;
    private readonly List<IActorRef> _waitingForAccept = [];

    // What the running JobRun reports; turned into events here, on the actor's thread.
    private sealed record RunEvent(IJobEvent Event) : INoSerializationVerificationNeeded;
    private sealed record TaskSucceeded(string Task, DeviceId Device, int Attempt, double Seconds) : INoSerializationVerificationNeeded;
    private sealed record RunFinished(JobRunResult Outcome) : INoSerializationVerificationNeeded;

    public JobEntityActor(string jobId, IActorRef deviceManager, JobRunOptions options)
    {
        _deviceManager = deviceManager;
        _options = options;
        _state = JobState.Empty(jobId);
        PersistenceId = $"job-{jobId}";

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is JobState snapshot) _state = snapshot;
        });
        Recover<IJobEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            _snapshotAt = _state.Events;
            _firstCompletions.UnionWith(_state.Tasks.Where(t => t.Completions > 0).Select(t => t.Name));
            if (_state.Status == JobStatus.Running) Self.Tell(new Resume());
            else if (_state.Status is JobStatus.Completed or JobStatus.Failed) RestWhenIdle();
        });

        Command<JobEntity.Start>(OnStart);
        Command<JobEntity.Get>(_ =>
        {
            // A summary: output bytes can be large, and replies cross nodes; they are fetched by GetOutput in chunks.
            Sender.Tell(_state with { Outputs = [.. _state.Outputs.Select(o => o with { Data = [] })] });
            if (_state.Status == JobStatus.Unknown) Context.Parent.Tell(new Passivate(PoisonPill.Instance));
        });
        Command<Resume>(_ => StartRun());
        Command<JobEntity.GetOutput>(m =>
        {
            var output = _state.Outputs.FirstOrDefault(o => o.Name == m.Name);
            if (output is null)
            {
                Sender.Tell(new FabricError(ErrorCode.ENOENT, _state.Status switch
                {
                    JobStatus.Unknown => $"there is no job {m.JobId}",
                    JobStatus.Completed => $"job {m.JobId} has no output '{m.Name}' (outputs: {string.Join(", ", _state.Outputs.Select(o => o.Name))})",
                    _ => $"job {m.JobId} is {_state.Status}: its outputs exist once it has completed",
                }));
                return;
            }
            var offset = (int)Math.Clamp(m.Offset, 0, output.Data.Length);
            var length = Math.Clamp(m.Length, 0, output.Data.Length - offset);
            Sender.Tell(new JobEntity.OutputChunk(output.Data.AsSpan(offset, length).ToArray(), output.Data.Length));
        });
        Command<RunEvent>(m => Record(m.Event));
        Command<TaskSucceeded>(m => Record(_firstCompletions.Add(m.Task)
            ? new JobEvents.TaskCompleted(m.Task, m.Device, m.Attempt, m.Seconds, Now())
            : new TaskRecomputed(m.Task, m.Device, m.Attempt, m.Seconds, Now())));
        Command<RunFinished>(OnRunFinished);
        Command<ClusterEvent.UnreachableMember>(m =>
            _client?.NodeUnreachable(m.Member.Address, "the cluster's failure detector lost it; its tasks run again elsewhere"));
        Command<NodeRegistry.NodeLost>(m =>
            _client?.NodeUnreachable(m.Address, "the cluster lost it; its tasks run again elsewhere", m.Node));
        Command<NodeRegistry.NodeAvailable>(m => _client?.NodeReturned(m.Address, m.Node));
        Command<ClusterEvent.IClusterDomainEvent>(_ => { });
        Command<ReceiveTimeout>(_ => Context.Parent.Tell(new Passivate(PoisonPill.Instance)));
        Command<SaveSnapshotSuccess>(_ => { });
        Command<SaveSnapshotFailure>(f => _log.Warning("job {0}: snapshot not saved: {1}", _state.JobId, f.Cause.Message));
    }

    public override string PersistenceId { get; }

    private sealed record Resume;

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private void OnStart(JobEntity.Start m)
    {
        if (_state.Status != JobStatus.Unknown)
        {
            // The same submission again (a retry) is accepted; another job under this id is refused.
            Sender.Tell(_state.Spec is not null && JobJson.Write(_state.Spec) == JobJson.Write(m.Spec)
                ? new JobEntity.Accepted(_state.JobId)
                : new FabricError(ErrorCode.EEXIST, $"job id {_state.JobId} is taken by job '{_state.Spec?.Name}'; submit '{m.Spec.Name}' under another id"));
            return;
        }
        var replyTo = Sender;
        Persist(new Submitted(m.JobId, m.Spec, Now()), e =>
        {
            _state = _state.Apply(e);
            replyTo.Tell(new JobEntity.Accepted(_state.JobId));
            StartRun();
        });
    }

    private void StartRun()
    {
        if (_run is not null || _state.Status != JobStatus.Running || _state.Spec is null) return;
        var node = Akka.Cluster.Cluster.Get(Context.System).SelfAddress.ToString();
        Persist(new RunStarted(node, Now()), e =>
        {
            _state = _state.Apply(e);
            _run = new CancellationTokenSource();
            _client = FabricClient.Connect(Context.System, _deviceManager, new FabricClientOptions { RequestTimeout = TimeSpan.FromSeconds(30) });
            var run = new JobRun(_state.Spec!, _client, new EventsToSelf(Self), _options);
            var self = Self;
            run.RunAsync(_run.Token).PipeTo(self,
                success: result => new RunFinished(result),
                failure: ex => new RunFinished(new JobRunResult(new FabricError(ErrorCode.EIO, $"the run of job {_state.JobId} broke: {ex.Message}"),
                    ImmutableDictionary<string, byte[]>.Empty)));
        });
    }

    /// <summary>
    /// Progress events are persisted without holding up the entity (the journal batches them): a wide job reports
    /// thousands, and a lost one is harmless — the run that follows a crash recomputes what it cannot prove done.
    /// </summary>
    private void Record(IJobEvent e) => PersistAsync(e, persisted =>
    {
        _state = _state.Apply(persisted);
        // A snapshot holds every task, so a wide job saves one per as many events as it has tasks: the cost of
        // snapshots grows with the job, not with its square, and a recovery still replays at most that many events.
        if (_state.Events - _snapshotAt < Math.Max(SnapshotEvery, _state.Tasks.Count)) return;
        _snapshotAt = _state.Events;
        SaveSnapshot(_state);
    });

    private void OnRunFinished(RunFinished m)
    {
        _run?.Dispose();
        _run = null;
        var client = _client;
        _client = null;
        if (client is not null) _ = client.DisposeAsync().AsTask();
        IJobEvent final = m.Outcome.Error is { } error
            ? new JobEvents.Failed(error, Now())
            : new JobEvents.Completed([.. m.Outcome.Outputs.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new JobOutput(kv.Key, kv.Value, kv.Value.Length))], Now());
        Persist(final, e =>
        {
            _state = _state.Apply(e);
            SaveSnapshot(_state);
            _log.Info("job {0} {1} after {2} runs", _state.JobId, _state.Status, _state.Runs);
            RestWhenIdle();
        });
    }

    /// <summary>
    /// A job that has ended needs no news of nodes, and stops (passivates) once nobody has asked about it for
    /// <see cref="IdleAfterEnd"/>: so it leaves the shard's remembered entities, and a shard that moves after a node
    /// loss restarts only the jobs still running, not every job ever run. Asked again later, it recovers from its
    /// final snapshot.
    /// </summary>
    private void RestWhenIdle()
    {
        Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
        Context.SetReceiveTimeout(IdleAfterEnd);
    }

    protected override void PreStart()
    {
        base.PreStart();
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.UnreachableMember));
        Context.System.EventStream.Subscribe(Self, typeof(NodeRegistry.NodeLost));
        Context.System.EventStream.Subscribe(Self, typeof(NodeRegistry.NodeAvailable));
    }

    protected override void PostStop()
    {
        Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
        _run?.Cancel();
        base.PostStop();
    }

    /// <summary>Forwards a run's reports to the entity, which persists them in order.</summary>
    private sealed class EventsToSelf(IActorRef entity) : IJobRunEvents
    {
        public void TaskPlaced(string task, DeviceId device, int attempt) =>
            entity.Tell(new RunEvent(new JobEvents.TaskPlaced(task, device, attempt, Now())));

        public void TaskSucceeded(string task, DeviceId device, int attempt, TimeSpan took) =>
            entity.Tell(new JobEntityActor.TaskSucceeded(task, device, attempt, took.TotalSeconds));

        public void TaskFailed(string task, DeviceId device, int attempt, FabricError error, bool willRetry) =>
            entity.Tell(new RunEvent(new JobEvents.TaskFailed(task, device, attempt, error, willRetry, Now())));

        public void BuffersLost(ImmutableArray<string> buffers, string reason) =>
            entity.Tell(new RunEvent(new JobEvents.BuffersLost(buffers, reason, Now())));
    }
}
