using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.Memory;
using static Fabric.Core.Protocol.ContextRequests;
using static Fabric.Core.Protocol.DeviceRequests;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="Device"/>: its states, contexts and exports. The command path (queues, fences,
/// waiters) is its <see cref="SubmissionEngine"/>; submissions run on the thread pool, never on this actor, so it
/// answers info and waits while kernels run.
/// <code>
///   Operating ──ResetDevice──▶ Resetting: queued and running work fails EIO; open, submit, wait → EBUSY
///       ▲                          │        (its contexts refuse allocate and map once told it is in reset)
///       └── no work runs and ──────┘
///           the hold is over
///   Operating | Resetting ──Remove──▶ Removed: everything → ENODEV, work aborted, contexts torn down ──▶ stopped
///   any state ──a handler throws──▶ clients told EIO, stopped by the manager (the device then reads Malfunction)
/// </code>
/// </summary>
internal sealed class DeviceActor : ReceiveActor, IWithTimers
{
    private readonly DeviceId _id;
    private readonly DeviceProfile _profile;
    private readonly int _group;
    private readonly IActorRef _manager;
    private readonly FabricDataPlane? _dataPlane;
    private readonly FaultPlan? _faults;
    private readonly DeviceMemory _memory;
    private readonly Dictionary<IActorRef, (ContextId Id, IActorRef Client)> _contexts = [];
    private readonly List<IActorRef> _resetRequesters = [];
    private readonly ImportCount _imports = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private SubmissionEngine _engine = null!;
    private DeviceStatus _status = DeviceStatus.Operational;
    private long _nextContext, _nextExport, _resets;
    private int _exports, _abortedByReset;
    private readonly HashSet<ExportId> _retiredExports = [];
    private DateTime _resetHeldUntil;

    private sealed record ResetHoldOver;
    private sealed record ContextGone(IActorRef Context);
    private sealed record ExportGone(ExportId Export);

    public DeviceActor(DeviceId id, DeviceProfile profile, int group, IActorRef manager, FabricDataPlane? dataPlane, FaultPlan? faults)
    {
        (_id, _profile, _group, _manager, _dataPlane, _faults) = (id, profile, group, manager, dataPlane, faults);
        _memory = new DeviceMemory(profile.MemoryBytes, granule: 256);
        Operating();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart() => _engine = new SubmissionEngine(_id, _profile, Self, _manager, _dataPlane, Timers, _log);

    // ── states ────────────────────────────────────────────────────────────────────────────────

    private void Operating()
    {
        Common();
        Receive<OpenDevice>(OnOpen);
        Receive<Device.Enqueue>(m =>
        {
            foreach (var submission in m.Submissions) _engine.Enqueue(submission, () => _faults?.Pass(FaultPlan.Sites.DeviceEnqueue, _id.ToString()));
        });
        Receive<WaitFence>(m => _engine.Wait(Sender, [m.Fence], any: false, m.Timeout, m.Owner, m.Tag));
        Receive<WaitAnyFence>(m => _engine.Wait(Sender, m.Fences, any: true, m.Timeout, m.Owner, m.Tag));
        Receive<ResetDevice>(OnReset);
        Receive<Device.CreateExport>(OnCreateExport);
    }

    private void Resetting()
    {
        Common();
        Refusing(new FabricError(ErrorCode.EBUSY, $"{_id} is being reset and refuses new work; try again when the reset is done"));
        Receive<ResetDevice>(_ => _resetRequesters.Add(Sender)); // already running: this requester hears when it ends
        Receive<ResetHoldOver>(_ => TryFinishReset());
    }

    private void Removed()
    {
        var gone = new FabricError(ErrorCode.ENODEV, $"{_id} was removed");
        Common();
        Refusing(gone);
        Receive<ResetDevice>(_ => Sender.Tell(gone));
    }

    /// <summary>New work is refused with <paramref name="error"/>: opens, submissions, waits and exports.</summary>
    private void Refusing(FabricError error)
    {
        Receive<OpenDevice>(_ => Sender.Tell(error));
        Receive<Device.Enqueue>(m => { foreach (var submission in m.Submissions) _engine.Refuse(submission, error); });
        Receive<WaitFence>(_ => Sender.Tell(error));
        Receive<WaitAnyFence>(_ => Sender.Tell(error));
        Receive<Device.CreateExport>(m => m.ReplyTo.Tell(new ContextProtocol.ExportFailed(error, m.ReplyTo)));
    }

    /// <summary>What every state handles: work already running, info, waits ending, routing to exports, lifetime.</summary>
    private void Common()
    {
        Receive<GetDeviceInfo>(_ => Sender.Tell(Info()));
        Receive<SubmissionEngine.FlushOutbox>(_ => _engine.Flush());
        Receive<FenceAccess.SignalOut>(m => _engine.OnSignalOut(m));
        Receive<SubmissionEngine.Ran>(OnRan);
        Receive<SubmissionEngine.WatchdogFired>(m => _engine.OnWatchdog(m));
        Receive<SubmissionEngine.WaiterExpired>(m => _engine.OnWaiterExpired(m));
        Receive<SubmissionEngine.MergeDone>(m => _engine.OnMergeDone(m));
        Receive<CancelWait>(m => _engine.Cancel(m));
        Receive<DmaBufExport.Attach>(m => RouteToExport(m.Token.Export, m, m.Importer, e => new ContextProtocol.AttachFailed(e, m.ReplyTo)));
        Receive<DmaBufExport.Revoke>(m => RouteToExport(m.Export, m, m.ReplyTo, e => e));
        Receive<Device.AbortUsers>(m => _engine.AbortUsers(m));
        Receive<Device.ClientFence>(m => _engine.ClientFence(m));
        Receive<Device.AbortContext>(m =>
        {
            _engine.Abort(p => p.Submission.Context == m.Context, m.Error, blame: false);
            _engine.FailOwnedFences(m.Context, m.Error);
        });
        Receive<Device.NotifyWhenIdle>(m => _engine.NotifyWhenIdle(m.Context, Sender));
        Receive<ContextGone>(m => _contexts.Remove(m.Context));
        Receive<DmaBufExport.Retired>(m =>
        {
            if (!_retiredExports.Add(m.Export)) return;
            _exports--;
            Sender.Tell(PoisonPill.Instance); // after what was routed to it already, which it still answers
        });
        Receive<ExportGone>(m => { if (!_retiredExports.Remove(m.Export)) _exports--; });
        Receive<Device.Remove>(_ => OnRemove());
    }

    private DeviceInfo Info()
    {
        var stats = _memory.Stats;
        return new DeviceInfo(_id, _profile.Kind, _group, _profile.PageSize, _profile.Queues,
            stats.Capacity, stats.Used, stats.LargestFree, stats.Fragmentation, stats.Allocations,
            _contexts.Count, _exports, _engine.Depth, _engine.Completed, _engine.Failed, _resets, _engine.Utilization(),
            _status == DeviceStatus.InReset, _engine.Waiters, _imports.Value, _status);
    }

    private void SetStatus(DeviceStatus status)
    {
        _status = status;
        foreach (var context in _contexts.Keys) context.Tell(new ContextProtocol.DeviceStatusChanged(status));
    }

    private void OnOpen(OpenDevice m)
    {
        var id = new ContextId(++_nextContext);
        var spec = new ContextProtocol.Spec(_id, id, m.Client, Self, _manager, _memory, _profile, _group, _dataPlane, _imports, _faults);
        var context = Context.ActorOf(ContextProtocol.Props(spec), $"ctx-{id.Value}");
        Context.WatchWith(context, new ContextGone(context));
        _contexts[context] = (id, m.Client);
        Sender.Tell(new DeviceOpened(_id, id, context, Info()));
    }

    private void OnRan(SubmissionEngine.Ran m)
    {
        var queue = _engine.OnRan(m);
        if (_status == DeviceStatus.Operational) _engine.StartNext(queue);
        else if (_status == DeviceStatus.InReset) TryFinishReset();
        else if (_engine.RunningCount == 0) Retire();
    }

    // ── reset and removal ───────────────────────────────────────────────────────────────────────

    private void OnReset(ResetDevice m)
    {
        _resetRequesters.Add(Sender);
        _resets++;
        _resetHeldUntil = DateTime.UtcNow + (m.Hold > TimeSpan.Zero ? m.Hold : TimeSpan.Zero);
        SetStatus(DeviceStatus.InReset);
        Become(Resetting);
        _abortedByReset = _engine.Abort(_ => true, new FabricError(ErrorCode.EIO, $"aborted by a reset of {_id}"), blame: false);
        if (m.Hold > TimeSpan.Zero) Timers.StartSingleTimer("reset-hold", new ResetHoldOver(), m.Hold);
        TryFinishReset();
    }

    private void TryFinishReset()
    {
        if (_engine.RunningCount > 0 || DateTime.UtcNow < _resetHeldUntil) return;
        SetStatus(DeviceStatus.Operational);
        Become(Operating);
        foreach (var requester in _resetRequesters) requester.Tell(new DeviceResetDone(_id, _abortedByReset));
        _resetRequesters.Clear();
        _engine.TryStartAll();
    }

    private void OnRemove()
    {
        if (_status == DeviceStatus.Removed) return;
        SetStatus(DeviceStatus.Removed);
        Become(Removed);
        _engine.Abort(_ => true, new FabricError(ErrorCode.ENODEV, $"{_id} was removed"), blame: false);
        TellClients(ErrorCode.ENODEV, "was removed");
        foreach (var context in _contexts.Keys) Context.Stop(context);
        foreach (var requester in _resetRequesters) requester.Tell(new FabricError(ErrorCode.ENODEV, $"{_id} was removed during its reset"));
        _resetRequesters.Clear();
        if (_engine.RunningCount == 0) Retire();
    }

    /// <summary>
    /// A removed device with nothing running asks its manager to retire it rather than stopping itself: the manager
    /// routes nothing more here and sends a PoisonPill, so requests it forwarded before are answered ENODEV or Removed
    /// here first instead of dying with the mailbox.
    /// </summary>
    private void Retire() => _manager.Tell(new Device.Retired(_id.Index));

    private void TellClients(ErrorCode code, string what)
    {
        foreach (var (context, (id, client)) in _contexts)
            client.Tell(new ContextFailed(id, context, new FabricError(code, $"context {_id}/{id} is gone: {_id} {what}; everything it held was released")));
    }

    // ── exports ─────────────────────────────────────────────────────────────────────────────────

    private void OnCreateExport(Device.CreateExport m)
    {
        if (!m.Buffer.LocalBlock.TryAcquire())
        {
            m.ReplyTo.Tell(new ContextProtocol.ExportFailed(new FabricError(ErrorCode.ENOENT, $"{m.Buffer} of {_id}/{m.Exporter} was already released"), m.ReplyTo));
            return;
        }
        var id = new ExportId(_id, ++_nextExport);
        var token = new ExportToken(id, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        var spec = new DmaBufExport.Spec(token, m.Buffer.LocalBlock, m.Buffer.Size, m.Access, m.ExporterActor, $"{_id}/{m.Exporter}",
            m.Buffer.Handle, _dataPlane, _faults);
        var export = Context.ActorOf(DmaBufExport.Props(spec), $"export-{id.Value}");
        Context.WatchWith(export, new ExportGone(id));
        _exports++;
        m.ExporterActor.Tell(new Device.ExportCreated(token, export, m.Buffer.Handle, m.Buffer.Size, m.ReplyTo));
    }

    private void RouteToExport(ExportId export, object message, IActorRef failTo, Func<FabricError, object> failure)
    {
        var child = Context.Child($"export-{export.Value}");
        if (export.Device == _id && !child.IsNobody() && !_retiredExports.Contains(export)) child.Forward(message);
        else failTo.Tell(failure(new FabricError(ErrorCode.ENOENT, $"{export} does not exist: it was revoked or released, or never made")));
    }

    // ── supervision and lifetime ────────────────────────────────────────────────────────────────

    /// <summary>Contexts and exports own device memory: one that throws is stopped (released as by a close), never restarted empty.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new StopOnFailure(_log, _id.ToString());

    /// <summary>A handler that throws fails the device: its contexts' clients hear it first (EIO naming the exception's type).</summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        try { return base.AroundReceive(receive, message); }
        catch (Exception e)
        {
            TellClients(ErrorCode.EIO, $"failed ({e.GetType().Name}) and was stopped");
            throw;
        }
    }

    protected override void PostStop()
    {
        _engine?.Stop(new FabricError(ErrorCode.ENODEV, $"{_id} was removed"));
        _memory.Dispose();
    }
}
