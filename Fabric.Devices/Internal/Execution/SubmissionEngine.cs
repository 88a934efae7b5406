using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Core.Telemetry;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Fences;
using Fabric.Devices.Internal.State;
using static Fabric.Core.Protocol.ContextRequests;
using static Fabric.Core.Protocol.DeviceRequests;
using Pending = Fabric.Devices.Internal.Execution.DeviceQueues.Pending;

namespace Fabric.Devices.Internal.Execution;

/// <summary>
/// A device's command path, run on its actor's thread: queues, the fence timeline, fence waiters and the answers to
/// submitters. Submissions run in place (tiny ones) or on the thread pool, never blocking the actor; their ends
/// come back as <see cref="Ran"/>. The device actor decides what to accept in which state; this does the work.
/// </summary>
internal sealed class SubmissionEngine(
    DeviceId id, DeviceProfile profile, IActorRef self, IActorRef manager, FabricDataPlane? dataPlane, ITimerScheduler timers, ILoggingAdapter log)
{
    /// <summary>A submission's work on the pool ended (or was cancelled).</summary>
    public sealed record Ran(long Seq, FabricError? Error, bool Cancelled);
    public sealed record FlushOutbox;
    public sealed record WaiterExpired(long Waiter);
    public sealed record WatchdogFired(long Seq);
    /// <summary>The inputs of a merged fence all signalled (or one failed, or the bound passed).</summary>
    public sealed record MergeDone(long Seq, FabricError? Error);

    /// <summary>How long a merged fence waits for its inputs before it fails with ETIMEDOUT.</summary>
    private static readonly TimeSpan MergeBound = TimeSpan.FromMinutes(10);

    private readonly FenceTimeline _fences = new(id, profile.FenceHistory);
    private readonly DeviceQueues _queues = new(profile.Queues);
    private readonly FenceWaiters<IActorRef> _waiters = new();
    private readonly ClientFences _clientFences = new();
    private readonly Dictionary<ContextId, IActorRef> _idleWatchers = [];
    private readonly Dictionary<(IActorRef Space, long Unmap), HashSet<long>> _unmapWaits = [];
    private readonly Outbox _outbox = new();
    private readonly KeyValuePair<string, object?> _deviceTag = new("device", id.ToString());
    private bool _flushQueued;

    public long Completed { get; private set; }
    public long Failed { get; private set; }
    public int Depth => _queues.Depth;
    public int RunningCount => _queues.RunningCount;
    public int Waiters => _waiters.Count;
    public double Utilization() => _queues.Utilization();

    // ── submissions ─────────────────────────────────────────────────────────────────────────────

    /// <summary>
    /// Issues the submission's fences and queues it; <paramref name="issued"/> runs once they exist (fault injection).
    /// A context with as many submissions pending as its limit is refused (EBUSY) before any fence is issued.
    /// </summary>
    public void Enqueue(PreparedSubmission submission, Action issued)
    {
        var context = submission.Context;
        if (ContextLimits.Submission($"{id}/{context}", _queues.InFlight(context), profile.MaxPendingSubmissionsPerContext) is { } full)
        {
            Refuse(submission, full);
            return;
        }
        var fence = _fences.Issue();
        var pending = new Pending(submission, fence, [.. Enumerable.Range(0, submission.OutFences).Select(_ => _fences.Issue())]);
        issued();
        _queues.Accepted(pending);
        var submitted = new Submitted(fence, pending.OutFences);
        if (_queues.IsIdle(submission.Queue) && SubmissionRunner.RunsInline(submission))
        {
            RunInPlace(pending, notify: false); // idle queue, tiny work: run it now and answer once, already completed
            submission.Reply.Accepted(submitted, _fences.Status(fence.Seq), Outbox());
            return;
        }
        submission.Reply.Accepted(submitted, null, Outbox());
        _queues.Queue(pending);
        TryStart(submission.Queue);
    }

    public void Refuse(PreparedSubmission submission, FabricError error)
    {
        submission.Release();
        submission.Reply.Rejected(error);
    }

    public void TryStartAll()
    {
        for (var queue = 0; queue < _queues.Count; queue++) TryStart(queue);
    }

    private void TryStart(int queue)
    {
        while (_queues.TryNext(queue, out var pending))
        {
            if (SubmissionRunner.RunsInline(pending.Submission)) RunInPlace(pending, notify: true);
            else StartOnPool(pending);
        }
    }

    /// <summary>A tiny submission runs here and now: microseconds of work, no thread-pool hop, no waits.</summary>
    private void RunInPlace(Pending pending, bool notify)
    {
        var started = Stopwatch.GetTimestamp();
        FabricError? error;
        try { error = SubmissionRunner.RunInline(pending.Submission, pending.Fence, slot => SignalOutFence(pending, slot)); }
        catch (Exception e) { error = new FabricError(ErrorCode.EIO, $"{pending.Fence} failed inside the device: {e.Message}"); }
        pending.Submission.Release();
        _queues.AddBusy(Stopwatch.GetElapsedTime(started));
        Finish(pending, error, blameContext: error is not null, notify);
    }

    private void StartOnPool(Pending pending)
    {
        var running = _queues.Start(pending);
        var seq = pending.Fence.Seq;
        timers.StartSingleTimer(WatchdogKey(seq), new WatchdogFired(seq), profile.Watchdog);
        var access = new FenceAccess(self, manager, seq);
        var cancel = running.Cancel.Token;
        var (plane, watchdog) = (dataPlane, profile.Watchdog);
        Task.Run(() => SubmissionRunner.RunAsync(pending.Submission, pending.Fence, access, plane, watchdog, cancel), cancel)
            .PipeTo(self,
                success: error => new Ran(seq, error, Cancelled: false),
                failure: e => e is OperationCanceledException
                    ? new Ran(seq, null, Cancelled: true)
                    : new Ran(seq, new FabricError(ErrorCode.EIO, $"fence {pending.Fence} failed inside the device: {e.Message}"), false));
    }

    private static string WatchdogKey(long seq) => $"watchdog-{seq}";

    public void OnWatchdog(WatchdogFired m)
    {
        if (_queues.TryGetRunning(m.Seq, out var running))
            running.Abort(new FabricError(ErrorCode.ETIMEDOUT, $"{running.Pending.Fence} on queue {running.Pending.Submission.Queue} ran longer " +
                                                               $"than the {profile.Watchdog.TotalSeconds:0.#} s watchdog of {id} and was stopped"));
    }

    /// <summary>
    /// A SIGNAL_FENCE of a running submission. Once the device has decided to stop the submission (watchdog, reset,
    /// unmap, removal) a later signal is dropped: its out-fences then carry the abort's error, like its fence.
    /// </summary>
    public void OnSignalOut(FenceAccess.SignalOut m)
    {
        if (_queues.TryGetRunning(m.Seq, out var running) && running.AbortReason is null) SignalOutFence(running.Pending, m.Slot);
    }

    private void SignalOutFence(Pending pending, int slot)
    {
        if (!SignalFence(pending.OutFences[slot].Seq, null))
            log.Debug("{0} signalled {1} again: ignored, a fence signals once", pending.Fence, pending.OutFences[slot]);
    }

    /// <summary>A pool submission ended; returns its queue, or -1 when it was not running.</summary>
    public int OnRan(Ran m)
    {
        if (!_queues.TryFinish(m.Seq, out var running)) return -1;
        timers.Cancel(WatchdogKey(m.Seq));
        var pending = running.Pending;
        pending.Submission.Release();
        // Once the device decided to stop the submission, that decision is its result, even when the work finished
        // between the decision and this message: its dropped SIGNAL_FENCEs agree with it.
        var error = running.AbortReason ?? (m.Cancelled ? new FabricError(ErrorCode.EIO, $"{pending.Fence} was aborted") : m.Error);
        Finish(pending, error, blameContext: error is not null && running.AbortReason?.Code is not (ErrorCode.EIO or ErrorCode.ENODEV), notify: true);
        foreach (var (key, seqs) in _unmapWaits.Where(w => w.Value.Remove(m.Seq) && w.Value.Count == 0).ToList())
        {
            _unmapWaits.Remove(key);
            key.Space.Tell(new AddressSpace.UsersEnded(key.Unmap));
        }
        return pending.Submission.Queue;
    }

    /// <summary>Starts what waits on <paramref name="queue"/> (a queue <see cref="OnRan"/> returned; -1: nothing ended).</summary>
    public void StartNext(int queue)
    {
        if (queue >= 0) TryStart(queue);
    }

    /// <summary>Signals a submission's fence and every out-fence it left unsignalled with its result.</summary>
    private void Finish(Pending pending, FabricError? error, bool blameContext, bool notify)
    {
        if (error is null) Completed++;
        else Failed++;
        if (blameContext && error is not null) // the context hears of its fault before anyone can see the fence signalled
            pending.Submission.ContextActor.Tell(new ContextProtocol.SubmissionFailed(pending.Fence, error));
        SignalFence(pending.Fence.Seq, error);
        if (notify) pending.Submission.Reply.Signalled(_fences.Status(pending.Fence.Seq), Outbox());
        foreach (var fence in pending.OutFences) SignalFence(fence.Seq, error);
        if (_queues.Ended(pending) && _idleWatchers.Remove(pending.Submission.Context, out var watcher))
            watcher.Tell(new ContextProtocol.ContextIdle());
    }

    /// <summary>Stops the work that <paramref name="match"/>: queued fails now, running is cancelled and fails when it ends.</summary>
    public int Abort(Func<Pending, bool> match, FabricError error, bool blame)
    {
        var queued = _queues.RemoveQueued(match);
        foreach (var pending in queued)
        {
            pending.Submission.Release();
            Finish(pending, error, blame, notify: true);
        }
        var running = _queues.AllRunning.Where(r => match(r.Pending)).ToList();
        foreach (var r in running) r.Abort(error);
        return queued.Count + running.Count;
    }

    /// <summary>An unmap wins over its users: they stop, and the space hears once none of them runs (at once when none does).</summary>
    public void AbortUsers(Device.AbortUsers m)
    {
        Abort(p => p.Submission.Uses(m.Space, m.Mappings), m.Error, blame: true);
        var running = _queues.AllRunning.Where(r => r.Pending.Submission.Uses(m.Space, m.Mappings)).Select(r => r.Pending.Fence.Seq).ToHashSet();
        if (running.Count == 0) m.Space.Tell(new AddressSpace.UsersEnded(m.Unmap));
        else _unmapWaits[(m.Space, m.Unmap)] = running;
    }

    public void NotifyWhenIdle(ContextId context, IActorRef replyTo)
    {
        if (_queues.InFlight(context) == 0) replyTo.Tell(new ContextProtocol.ContextIdle());
        else _idleWatchers[context] = replyTo;
    }

    // ── fences and waits ────────────────────────────────────────────────────────────────────────

    private bool SignalFence(long seq, FabricError? error)
    {
        if (!_fences.Signal(seq, error)) return false;
        foreach (var waiter in _waiters.Signalled(seq)) Answer(waiter);
        return true;
    }

    private void Answer(FenceWaiters<IActorRef>.Waiter waiter)
    {
        timers.Cancel(WaiterKey(waiter.Id));
        FabricMetrics.FenceWait.Record(Stopwatch.GetElapsedTime(waiter.Since).TotalSeconds, _deviceTag);
        if (waiter.Any) waiter.ReplyTo.Tell(new FenceSet([.. waiter.Fences.Select(_fences.Status).Where(s => s.IsSignalled)]));
        else waiter.ReplyTo.Tell(_fences.Status(waiter.Fences[0]));
    }

    private static string WaiterKey(long id) => $"waiter-{id}";

    /// <summary>
    /// A wait on one fence, or on any of several: answered now when one signalled or the timeout is zero, else when one
    /// does. A wait that would stay, from an owner with as many waiting as its limit, is refused (EBUSY).
    /// </summary>
    public void Wait(IActorRef replyTo, ImmutableArray<FenceId> fences, bool any, TimeSpan timeout, IActorRef? owner, long tag)
    {
        foreach (var fence in fences)
        {
            if (fence.Device == id && _fences.IsIssued(fence.Seq)) continue;
            replyTo.Tell(FabricError.Invalid($"{fence} was never issued: the last fence of {id} is {_fences.LastIssued}"));
            return;
        }
        var signalled = fences.Select(f => _fences.Status(f.Seq)).Where(s => s.IsSignalled).ToImmutableArray();
        if (signalled.Length > 0 || timeout <= TimeSpan.Zero)
        {
            replyTo.Tell(any ? new FenceSet(signalled) : _fences.Status(fences[0].Seq));
            return;
        }
        FenceWaiters<IActorRef>.WaitKey? key = owner is null ? null : new(owner, tag);
        if (key is { } k && _waiters.Adds(k)
            && ContextLimits.Waiter(owner!.Path.Name, id.ToString(), _waiters.CountOf(owner), profile.MaxFenceWaitersPerClient) is { } full)
        {
            replyTo.Tell(full);
            return;
        }
        var waiter = _waiters.Add(replyTo, [.. fences.Select(f => f.Seq)], any, key);
        timers.StartSingleTimer(WaiterKey(waiter.Id), new WaiterExpired(waiter.Id), timeout);
    }

    public void OnWaiterExpired(WaiterExpired m)
    {
        if (_waiters.Expire(m.Waiter) is { } waiter) Answer(waiter);
    }

    /// <summary>The owner gave up: the waiter is gone at once, unanswered.</summary>
    public void Cancel(CancelWait m)
    {
        if (_waiters.Cancel(new(m.Owner, m.Tag)) is { } waiter) timers.Cancel(WaiterKey(waiter.Id));
    }

    // ── fences clients own ───────────────────────────────────────────────────────────────────────

    public void ClientFence(Device.ClientFence m)
    {
        m.ReplyTo.Tell(m.Request switch
        {
            CreateFence c => Create(m.Context, c),
            ContextRequests.SignalFence s => SignalOwned(m.Context, s),
            MergeFences g => Merge(g),
            _ => FabricError.Invalid($"{m.Request.GetType().Name} is not a fence request {id} knows"),
        });
    }

    private object Create(ContextId owner, CreateFence c)
    {
        if (_clientFences.CheckNewPoint(owner, c.Timeline, c.Point) is { } refused) return refused;
        var fence = _fences.Issue();
        _clientFences.Add(fence.Seq, owner, c.Timeline, c.Point);
        if (c.Signalled) foreach (var (seq, error) in _clientFences.Signal(fence.Seq, c.Error)) SignalFence(seq, error);
        return new FenceCreated(fence);
    }

    private object SignalOwned(ContextId owner, ContextRequests.SignalFence s)
    {
        if (s.Fence.Device != id || !_fences.IsIssued(s.Fence.Seq))
            return new FabricError(ErrorCode.EPERM, $"{owner} may not signal {s.Fence}: only fences a context created on {id} are signalled by clients");
        if (_clientFences.CheckSignal(owner, s.Fence) is { } refused) return refused;
        foreach (var (seq, error) in _clientFences.Signal(s.Fence.Seq, s.Error)) SignalFence(seq, error);
        return new Ack();
    }

    private object Merge(MergeFences g)
    {
        if (g.Fences.IsDefaultOrEmpty || g.Fences.Length > MaxWaitFences)
            return FabricError.Invalid($"a merge takes 1 to {MaxWaitFences} fences, not {(g.Fences.IsDefault ? 0 : g.Fences.Length)}");
        var merged = _fences.Issue();
        Task.WhenAll(g.Fences.Select(f => new FenceAccess(self, manager, 0).WaitAsync(f, MergeBound, CancellationToken.None)))
            .PipeTo(self, success: all => new MergeDone(merged.Seq, all.Select(Failure).FirstOrDefault(e => e is not null)),
                failure: e => new MergeDone(merged.Seq, new FabricError(ErrorCode.EIO, $"{merged} could not wait on its inputs: {e.Message}")));
        return new FenceCreated(merged);

        FabricError? Failure(FenceStatus status) => status.State switch
        {
            FenceState.Failed => status.Error,
            FenceState.Busy => new FabricError(ErrorCode.ETIMEDOUT, $"{status.Fence} did not signal within {MergeBound.TotalMinutes:0} minutes"),
            _ => null,
        };
    }

    public void OnMergeDone(MergeDone m) => SignalFence(m.Seq, m.Error);

    /// <summary>The owning context is gone: its unsignalled fences signal with <paramref name="error"/> (finite time).</summary>
    public void FailOwnedFences(ContextId owner, FabricError error)
    {
        foreach (var seq in _clientFences.RemoveOwnedBy(owner)) SignalFence(seq, error with { Message = $"{error.Message}; its fences signal with this error" });
    }

    // ── answers ────────────────────────────────────────────────────────────────────────────────

    /// <summary>The outbox for tagged answers, with a flush queued behind the messages already in the mailbox.</summary>
    private Outbox Outbox()
    {
        if (!_flushQueued)
        {
            _flushQueued = true;
            self.Tell(new FlushOutbox());
        }
        return _outbox;
    }

    /// <summary>Sends the gathered answers to submitters.</summary>
    public void Flush()
    {
        _flushQueued = false;
        _outbox.Flush();
    }

    /// <summary>The device stops: running work is cancelled (its pins drop when it ends), answers go out.</summary>
    public void Stop(FabricError reason)
    {
        Flush();
        foreach (var running in _queues.AllRunning) running.Abort(reason);
    }
}
