using System.Collections.Immutable;
using System.Diagnostics;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.Fences;
using Fabric.Devices.Internal.Memory;
using static Fabric.Core.Protocol.ContextRequests;
using static Fabric.Core.Protocol.DeviceRequests;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="Device"/>. Submissions run on the thread pool, never on this actor; it only keeps
/// the queues, fences and counters, so it answers info and waits while kernels run.
/// <code>
///   Operating ──ResetDevice──▶ Resetting (queued work fails EIO, running work is cancelled, new work EBUSY)
///       ▲                          │
///       └──── last running submission ended
/// </code>
/// </summary>
internal sealed class DeviceActor : ReceiveActor, IWithTimers
{
    private readonly DeviceId _id;
    private readonly DeviceProfile _profile;
    private readonly int _group;
    private readonly IActorRef _manager;
    private readonly DeviceMemory _memory;
    private readonly FenceTimeline _fences;
    private readonly Queue<Pending>[] _waiting;
    private readonly Running?[] _current;
    private readonly Dictionary<long, Running> _running = [];
    private readonly Dictionary<long, List<Waiter>> _waiters = [];
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly List<IActorRef> _resetRequesters = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Outbox _outbox = new();
    private bool _flushQueued;
    private long _nextContext;
    private long _nextExport;
    private long _nextWaiter;
    private int _openContexts;
    private int _exports;
    private long _completed;
    private long _failed;
    private long _resets;
    private int _abortedByReset;
    private TimeSpan _busy;

    /// <summary>A queued submission with the fences it was given.</summary>
    private sealed record Pending(PreparedSubmission Submission, FenceId Fence, ImmutableArray<FenceId> OutFences);

    private sealed class Running(Pending pending)
    {
        public Pending Pending { get; } = pending;
        public CancellationTokenSource Cancel { get; } = new();
        public Stopwatch Elapsed { get; } = Stopwatch.StartNew();
        public FabricError? AbortReason { get; set; }
    }

    private sealed class Waiter(long id, IActorRef replyTo, ImmutableArray<long> fences, bool any)
    {
        public long Id { get; } = id;
        public IActorRef ReplyTo { get; } = replyTo;
        public ImmutableArray<long> Fences { get; } = fences;
        public bool Any { get; } = any;
        public bool Done { get; set; }
    }

    private sealed record Ran(long Seq, FabricError? Error, bool Cancelled);
    private sealed record FlushOutbox;
    private sealed record SignalOut(long Seq, int Slot);
    private sealed record WaiterExpired(long Waiter);
    private sealed record WatchdogFired(long Seq);
    private sealed record ContextGone;
    private sealed record ExportGone;

    private readonly FabricDataPlane? _dataPlane;
    private readonly ImportCount _imports = new();

    public DeviceActor(DeviceId id, DeviceProfile profile, int group, IActorRef manager, FabricDataPlane? dataPlane)
    {
        _dataPlane = dataPlane;
        _id = id;
        _profile = profile;
        _group = group;
        _manager = manager;
        _memory = new DeviceMemory(profile.MemoryBytes, granule: 256);
        _fences = new FenceTimeline(id, profile.FenceHistory);
        _waiting = [.. Enumerable.Range(0, profile.Queues).Select(_ => new Queue<Pending>())];
        _current = new Running?[profile.Queues];

        Receive<GetDeviceInfo>(_ => Sender.Tell(Info()));
        Receive<FlushOutbox>(_ =>
        {
            _flushQueued = false;
            _outbox.Flush();
        });
        Receive<OpenDevice>(OnOpen);
        Receive<Device.Enqueue>(m =>
        {
            foreach (var submission in m.Submissions) Enqueue(submission);
        });
        Receive<SignalOut>(OnSignalOut);
        Receive<Ran>(OnRan);
        Receive<WatchdogFired>(OnWatchdog);
        Receive<WaitFence>(OnWait);
        Receive<WaitAnyFence>(OnWaitAny);
        Receive<WaiterExpired>(OnWaiterExpired);
        Receive<ResetDevice>(OnReset);
        Receive<Device.CreateExport>(OnCreateExport);
        Receive<DmaBufExport.Attach>(m => RouteToExport(m.Token.Export, m, m.Importer, e => new ContextProtocol.AttachFailed(e, m.ReplyTo)));
        Receive<DmaBufExport.Revoke>(m => RouteToExport(m.Export, m, m.ReplyTo, e => e));
        Receive<ContextGone>(_ => _openContexts--);
        Receive<ExportGone>(_ => _exports--);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private bool Resetting => _resetRequesters.Count > 0;

    /// <summary>The outbox for tagged answers, with a flush queued behind the messages already in the mailbox.</summary>
    private Outbox Outbox()
    {
        if (!_flushQueued)
        {
            _flushQueued = true;
            Self.Tell(new FlushOutbox());
        }
        return _outbox;
    }

    private DeviceInfo Info()
    {
        var stats = _memory.Stats;
        var busy = _busy + _current.Where(r => r is not null).Aggregate(TimeSpan.Zero, (sum, r) => sum + r!.Elapsed.Elapsed);
        var utilization = Math.Min(1.0, busy.TotalSeconds / Math.Max(1e-9, _uptime.Elapsed.TotalSeconds * _profile.Queues));
        return new DeviceInfo(_id, _profile.Kind, _group, _profile.PageSize, _profile.Queues,
            stats.Capacity, stats.Used, stats.LargestFree, stats.Fragmentation, stats.Allocations,
            _openContexts, _exports, QueueDepth(), _completed, _failed, _resets, utilization, Resetting,
            _waiters.Values.SelectMany(list => list).Where(w => !w.Done).Select(w => w.Id).Distinct().Count(), _imports.Value);
    }

    private int QueueDepth() => _waiting.Sum(q => q.Count) + _current.Count(r => r is not null);

    private void OnOpen(OpenDevice m)
    {
        var id = new ContextId(++_nextContext);
        var spec = new ContextProtocol.Spec(_id, id, m.Client, Self, _manager, _memory, _profile, _group, _dataPlane, _imports);
        var context = Context.ActorOf(ContextProtocol.Props(spec), $"ctx-{id.Value}");
        Context.WatchWith(context, new ContextGone());
        _openContexts++;
        Sender.Tell(new DeviceOpened(_id, id, context, Info()));
    }

    private void Enqueue(PreparedSubmission submission)
    {
        if (Resetting)
        {
            submission.Release();
            submission.Reply.Rejected(new FabricError(ErrorCode.EBUSY, $"{_id} is being reset and refuses new work; submit again when the reset is done"));
            return;
        }
        var fence = _fences.Issue();
        var outFences = Enumerable.Range(0, submission.OutFences).Select(_ => _fences.Issue()).ToImmutableArray();
        var pending = new Pending(submission, fence, outFences);
        var queue = submission.Queue;
        if (_current[queue] is null && _waiting[queue].Count == 0 && SubmissionRunner.RunsInline(submission))
        {
            // Idle queue, tiny work: run it now and answer once, already completed.
            RunInPlace(pending, notify: false);
            submission.Reply.Accepted(new Submitted(fence, outFences), _fences.Status(fence.Seq), Outbox());
            return;
        }
        submission.Reply.Accepted(new Submitted(fence, outFences), null, Outbox());
        _waiting[queue].Enqueue(pending);
        TryStart(queue);
    }

    private void TryStart(int queue)
    {
        while (_current[queue] is null && _waiting[queue].TryDequeue(out var pending))
        {
            if (SubmissionRunner.RunsInline(pending.Submission)) RunInPlace(pending, notify: true);
            else StartOnPool(queue, pending);
        }
    }

    /// <summary>A tiny submission runs here and now: microseconds of work, no thread-pool hop, no waits.</summary>
    private void RunInPlace(Pending pending, bool notify)
    {
        var started = Stopwatch.GetTimestamp();
        FabricError? error;
        try
        {
            error = SubmissionRunner.RunInline(pending.Submission, pending.Fence, slot => SignalOutFence(pending, slot));
        }
        catch (Exception e)
        {
            error = new FabricError(ErrorCode.EIO, $"{pending.Fence} failed inside the device: {e.Message}");
        }
        pending.Submission.Release();
        _busy += Stopwatch.GetElapsedTime(started);
        Finish(pending, error, blameContext: error is not null, notify);
    }

    private void StartOnPool(int queue, Pending pending)
    {
        var running = new Running(pending);
        _current[queue] = running;
        _running[pending.Fence.Seq] = running;
        Timers.StartSingleTimer(WatchdogKey(pending.Fence.Seq), new WatchdogFired(pending.Fence.Seq), _profile.Watchdog);

        var self = Self;
        var seq = pending.Fence.Seq;
        var access = new FenceAccess(self, _manager, seq);
        var cancel = running.Cancel.Token;
        var dataPlane = _dataPlane;
        Task.Run(() => SubmissionRunner.RunAsync(pending.Submission, pending.Fence, access, dataPlane, _profile.Watchdog, cancel), cancel)
            .PipeTo(self,
                success: error => new Ran(seq, error, Cancelled: false),
                failure: e => e is OperationCanceledException
                    ? new Ran(seq, null, Cancelled: true)
                    : new Ran(seq, new FabricError(ErrorCode.EIO, $"fence {pending.Fence} failed inside the device: {e.Message}"), false));
    }

    private static string WatchdogKey(long seq) => $"watchdog-{seq}";

    /// <summary>
    /// A SIGNAL_FENCE command of a running submission. Once the device has decided to stop the submission (watchdog,
    /// reset), a signal that arrives after that decision is dropped: its out-fences then carry the abort's error, like
    /// its fence, instead of some signalling success after the submission was already failed.
    /// </summary>
    private void OnSignalOut(SignalOut m)
    {
        if (_running.TryGetValue(m.Seq, out var running) && running.AbortReason is null) SignalOutFence(running.Pending, m.Slot);
    }

    private void SignalOutFence(Pending pending, int slot)
    {
        var fence = pending.OutFences[slot];
        if (!SignalFence(fence.Seq, null))
            _log.Debug("{0} signalled {1} again: ignored, a fence signals once", pending.Fence, fence);
    }

    private void OnRan(Ran m)
    {
        if (!_running.Remove(m.Seq, out var running)) return;
        Timers.Cancel(WatchdogKey(m.Seq));
        var pending = running.Pending;
        var queue = pending.Submission.Queue;
        _current[queue] = null;
        _busy += running.Elapsed.Elapsed;
        pending.Submission.Release();

        // Once the device decided to stop the submission (watchdog, reset, removal), that decision is its result, even
        // when the work finished between the decision and this message: its dropped SIGNAL_FENCEs agree with it.
        var error = running.AbortReason
            ?? (m.Cancelled ? new FabricError(ErrorCode.EIO, $"{pending.Fence} was aborted") : m.Error);
        Finish(pending, error, blameContext: error is not null && running.AbortReason?.Code != ErrorCode.EIO, notify: true);

        if (Resetting && _running.Count == 0) FinishReset();
        else TryStart(queue);
    }

    /// <summary>Signals a submission's fence and every out-fence it left unsignalled with its result.</summary>
    private void Finish(Pending pending, FabricError? error, bool blameContext, bool notify)
    {
        if (error is null) _completed++;
        else _failed++;
        // The context hears of its fault before anyone can see the fence signalled.
        if (blameContext && error is not null)
            pending.Submission.ContextActor.Tell(new ContextProtocol.SubmissionFailed(pending.Fence, error));
        SignalFence(pending.Fence.Seq, error);
        if (notify) pending.Submission.Reply.Signalled(_fences.Status(pending.Fence.Seq), Outbox());
        foreach (var fence in pending.OutFences) SignalFence(fence.Seq, error);
    }

    private void OnWatchdog(WatchdogFired m)
    {
        if (!_running.TryGetValue(m.Seq, out var running)) return;
        running.AbortReason = new FabricError(ErrorCode.ETIMEDOUT,
            $"{running.Pending.Fence} on queue {running.Pending.Submission.Queue} ran longer than the {_profile.Watchdog.TotalSeconds:0.#} s watchdog of {_id} and was stopped");
        running.Cancel.Cancel();
    }

    private bool SignalFence(long seq, FabricError? error)
    {
        if (!_fences.Signal(seq, error)) return false;
        if (!_waiters.Remove(seq, out var waiters)) return true;
        foreach (var waiter in waiters.Where(w => !w.Done)) Answer(waiter);
        return true;
    }

    private void Answer(Waiter waiter)
    {
        waiter.Done = true;
        Timers.Cancel(WaiterKey(waiter.Id));
        if (waiter.Any)
            waiter.ReplyTo.Tell(new FenceSet([.. waiter.Fences.Select(_fences.Status).Where(s => s.IsSignalled)]));
        else
            waiter.ReplyTo.Tell(_fences.Status(waiter.Fences[0]));
    }

    private static string WaiterKey(long id) => $"waiter-{id}";

    private FabricError? CheckIssued(FenceId fence) =>
        fence.Device != _id || !_fences.IsIssued(fence.Seq)
            ? FabricError.Invalid($"{fence} was never issued: the last fence of {_id} is {_fences.LastIssued}")
            : null;

    private void OnWait(WaitFence m)
    {
        if (CheckIssued(m.Fence) is { } error)
        {
            Sender.Tell(error);
            return;
        }
        var status = _fences.Status(m.Fence.Seq);
        if (status.IsSignalled || m.Timeout <= TimeSpan.Zero) Sender.Tell(status);
        else AddWaiter(Sender, [m.Fence.Seq], any: false, m.Timeout);
    }

    private void OnWaitAny(WaitAnyFence m)
    {
        foreach (var fence in m.Fences)
        {
            if (CheckIssued(fence) is not { } error) continue;
            Sender.Tell(error);
            return;
        }
        var signalled = m.Fences.Select(f => _fences.Status(f.Seq)).Where(s => s.IsSignalled).ToImmutableArray();
        if (signalled.Length > 0 || m.Timeout <= TimeSpan.Zero) Sender.Tell(new FenceSet(signalled));
        else AddWaiter(Sender, [.. m.Fences.Select(f => f.Seq)], any: true, m.Timeout);
    }

    private void AddWaiter(IActorRef replyTo, ImmutableArray<long> fences, bool any, TimeSpan timeout)
    {
        var waiter = new Waiter(++_nextWaiter, replyTo, fences, any);
        foreach (var seq in fences)
        {
            if (!_waiters.TryGetValue(seq, out var list)) _waiters[seq] = list = [];
            list.Add(waiter);
        }
        Timers.StartSingleTimer(WaiterKey(waiter.Id), new WaiterExpired(waiter.Id), timeout);
    }

    private void OnWaiterExpired(WaiterExpired m)
    {
        foreach (var list in _waiters.Values)
        {
            var waiter = list.FirstOrDefault(w => w.Id == m.Waiter);
            if (waiter is null) continue;
            if (!waiter.Done) Answer(waiter);
            foreach (var seq in waiter.Fences)
                if (_waiters.TryGetValue(seq, out var l) && l.RemoveAll(w => w.Id == m.Waiter) > 0 && l.Count == 0) _waiters.Remove(seq);
            return;
        }
    }

    private void OnReset(ResetDevice m)
    {
        _resetRequesters.Add(Sender);
        if (_resetRequesters.Count > 1) return; // a reset is already running; this requester hears when it ends
        _resets++;
        _abortedByReset = 0;
        var aborted = new FabricError(ErrorCode.EIO, $"aborted by a reset of {_id}");
        foreach (var queue in _waiting)
            while (queue.TryDequeue(out var pending))
            {
                _abortedByReset++;
                pending.Submission.Release();
                Finish(pending, aborted, blameContext: false, notify: true);
            }
        foreach (var running in _running.Values)
        {
            _abortedByReset++;
            running.AbortReason = aborted;
            running.Cancel.Cancel();
        }
        if (_running.Count == 0) FinishReset();
    }

    private void FinishReset()
    {
        foreach (var requester in _resetRequesters) requester.Tell(new DeviceResetDone(_id, _abortedByReset));
        _resetRequesters.Clear();
        for (var queue = 0; queue < _waiting.Length; queue++) TryStart(queue);
    }

    private void OnCreateExport(Device.CreateExport m)
    {
        if (!m.Buffer.Block.TryAcquire())
        {
            m.ReplyTo.Tell(new ContextProtocol.ExportFailed(new FabricError(ErrorCode.ENOENT, $"{m.Buffer} of {_id}/{m.Exporter} was already released"), m.ReplyTo));
            return;
        }
        var id = new ExportId(_id, ++_nextExport);
        var token = new ExportToken(id, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        var spec = new DmaBufExport.Spec(token, m.Buffer.Block, m.Buffer.Size, m.Access, m.ExporterActor, $"{_id}/{m.Exporter}", m.Buffer.Handle, _dataPlane);
        var export = Context.ActorOf(DmaBufExport.Props(spec), $"export-{id.Value}");
        Context.WatchWith(export, new ExportGone());
        _exports++;
        m.ExporterActor.Tell(new Device.ExportCreated(token, export, m.Buffer.Handle, m.Buffer.Size, m.ReplyTo));
    }

    private void RouteToExport(ExportId export, object message, IActorRef failTo, Func<FabricError, object> failure)
    {
        var child = Context.Child($"export-{export.Value}");
        if (export.Device == _id && !child.IsNobody()) child.Forward(message);
        else failTo.Tell(failure(new FabricError(ErrorCode.ENOENT, $"{export} does not exist: it was revoked or released, or never made")));
    }

    protected override void PostStop()
    {
        _outbox.Flush();
        foreach (var running in _running.Values)
        {
            running.AbortReason = new FabricError(ErrorCode.ENODEV, $"{_id} was removed");
            running.Cancel.Cancel();
        }
        _memory.Dispose();
    }

    /// <summary>What a running submission uses for its fence commands: waits through the node's manager, signals through this device.</summary>
    private sealed class FenceAccess(IActorRef device, IActorRef manager, long seq) : SubmissionRunner.IFenceAccess
    {
        public async Task<FenceStatus> WaitAsync(FenceId fence, TimeSpan timeout, CancellationToken cancel)
        {
            var reply = await manager.Ask<object>(new WaitFence(fence, timeout), timeout + TimeSpan.FromSeconds(5), cancel);
            return reply switch
            {
                FenceStatus status => status,
                FabricError error => new FenceStatus(fence, FenceState.Failed, error),
                _ => new FenceStatus(fence, FenceState.Failed, new FabricError(ErrorCode.EIO, $"waiting on {fence} got {reply.GetType().Name}")),
            };
        }

        public void SignalOut(int slot) => device.Tell(new SignalOut(seq, slot));
    }
}
