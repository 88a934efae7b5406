using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.State;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="ContextProtocol"/>: one open of a device. It owns buffer handles (its
/// <see cref="BufferTable"/>), address spaces (its children) and the exports it made, and death-watches its client.
/// <code>
///   Open ──AttachDevice──▶ Attaching (group claimed, space narrowed; other requests stashed) ──▶ Open
///     │
///     ├──Close──▶ Closing (new requests ENODEV; its work on the device aborted) ──idle or 2× watchdog──▶ stopped
///     └──client gone / a child or a handler throws──▶ stopped
///   stopped: address spaces unmap, buffers free, imports detach; exports are dropped (or revoked, after a failure);
///            a failure is told to the client (EIO naming the exception's type)
/// </code>
/// </summary>
internal sealed class ContextActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private const int MaxStashed = 10_000;
    private readonly ContextProtocol.Spec _spec;
    private readonly string _name;
    private readonly BufferTable _buffers;
    private readonly ContextDmaBufs _dmaBufs;
    private readonly Dictionary<AddressSpaceId, IActorRef> _spaces = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private AddressSpaceId? _attached;
    private IActorRef? _tasks; // the runner of device-side tasks
    private DeviceStatus _deviceStatus = DeviceStatus.Operational;
    private IActorRef? _closeReplyTo;
    private FabricError? _failure;
    private bool _clientGone;
    private int _stashed;
    private long _nextSpace, _submissions, _faults;
    private string? _lastFault;

    private sealed record ClientGone;
    private sealed record ChildFailed(string Child, string Type);
    private sealed record CloseTimeout;

    public ContextActor(ContextProtocol.Spec spec)
    {
        _spec = spec;
        _name = $"{spec.Device}/{spec.Id}";
        _buffers = new BufferTable(spec.Id, _name, spec.Profile.MaxBuffersPerContext, spec.Profile.MaxMappingsPerContext);
        _dmaBufs = new ContextDmaBufs(spec, _name, _buffers, Self);
        Context.WatchWith(spec.Client, new ClientGone());
        Open();
    }

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    private void Open()
    {
        Facts();
        Receive<Allocate>(m => Sender.Tell(DeviceBusy($"allocate {m.Size} bytes") ?? _buffers.Allocate(m, _spec.Memory, _spec.Profile, _spec.Device)));
        Receive<PinHostMemory>(m => Sender.Tell(DeviceBusy($"pin {m.Token}") ?? _buffers.PinHost(m, _spec.Profile, _spec.Device)));
        Receive<Free>(m => Sender.Tell(_buffers.Free(m, _spec.Imports)));
        Receive<WriteBuffer>(m => HostAccess(m.Handle, m.Offset, m.Data.Length, Access.Write, m.Data));
        Receive<ReadBuffer>(m => HostAccess(m.Handle, m.Offset, m.Length, Access.Read, null));
        Receive<CreateAddressSpace>(_ => Sender.Tell(CreateSpace()));
        Receive<DestroyAddressSpace>(OnDestroySpace);
        Receive<AttachDevice>(OnAttach);
        Receive<DetachDevice>(m => Sender.Tell(OnDetach(m)));
        Receive<Map>(OnMap);
        Receive<Unmap>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.Unmap(m.Iova, m.Length, _buffers.Exported, Sender))));
        Receive<GetIovaRanges>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.GetRanges(Sender))));
        Receive<AllowIovas>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.Allow([.. m.Ranges.Select(r => (r.Start, r.Last))], Sender))));
        Receive<ReserveIovas>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.Reserve(m.Range.Start, m.Range.Last, Sender))));
        Receive<CopyMapping>(m => MappingCopy.Start(m, _spaces, DeviceBusy("copy a mapping"), _name, Sender));
        Receive<ReadIova>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.ReadIova(m.Iova, m.Length, Sender))));
        Receive<WriteIova>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.WriteIova(m.Iova, m.Data, Sender))));
        Receive<Submit>(m => Submit([m]));
        Receive<SubmitBatch>(m => Submit(m.Submits));
        Receive<TaskRequests.RunTasks>(RunTasks);
        Receive<TaskRequests.ReadBuffers>(m => Runner().Tell(new TaskRunner.Read(m, Sender)));
        Receive<Export>(m => _dmaBufs.Export(m, Sender));
        Receive<Import>(m => _dmaBufs.Import(m, Sender));
        Receive<Revoke>(m => _dmaBufs.Revoke(m, Sender));
        Receive<IClientFenceRequest>(m => _spec.DeviceActor.Tell(new Device.ClientFence(_spec.Id, m, Sender)));
        Receive<GetContextInfo>(_ => Sender.Tell(Info()));
        Receive<Close>(_ => BeginClose());
    }

    /// <summary>Waiting for the group claim and the address space's narrowing; client requests wait in a bounded stash.</summary>
    private void Attaching(AddressSpaceId space, IActorRef replyTo)
    {
        Facts();
        Receive<DeviceManager.GroupClaimResult>(m => m.Space == space, m =>
        {
            if (m.Error is { } error) EndAttach(replyTo, error);
            else _spaces[space].Tell(new AddressSpace.SetAttached(true));
        });
        Receive<ContextProtocol.SpaceAttachDone>(m => m.Space == space, m =>
        {
            if (m.Error is not null) _spec.Manager.Tell(new DeviceManager.ReleaseGroup(_spaces[space]));
            else if (_attached is { } old && _spaces.TryGetValue(old, out var previous)) Detach(previous); // iommufd's replace
            if (m.Error is null) _attached = space;
            EndAttach(replyTo, m.Error);
        });
        Receive<Close>(_ => BeginClose());
        ReceiveAny(m =>
        {
            if (++_stashed <= MaxStashed) Stash.Stash();
            else Sender.Tell(new FabricError(ErrorCode.EBUSY, $"{_name} is attaching to {space} and has {MaxStashed} requests waiting already"));
        });
    }

    private void EndAttach(IActorRef replyTo, FabricError? error)
    {
        replyTo.Tell(error ?? (object)new Ack());
        _stashed = 0;
        Become(Open);
        Stash.UnstashAll();
    }

    /// <summary>Closing: new requests are refused; its work on the device is aborted, and it stops once that has ended (bounded).</summary>
    private void Closing()
    {
        Facts();
        Receive<ContextProtocol.ContextIdle>(_ => Context.Stop(Self));
        Receive<CloseTimeout>(_ => Context.Stop(Self));
        ReceiveAny(_ => Sender.Tell(new FabricError(ErrorCode.ENODEV, $"context {_name} is closing")));
    }

    private void BeginClose()
    {
        _closeReplyTo = Sender;
        Become(Closing);
        Stash.UnstashAll();
        _spec.DeviceActor.Tell(new Device.AbortContext(_spec.Id, new FabricError(ErrorCode.EIO, $"aborted: context {_name} was closed")));
        _spec.DeviceActor.Tell(new Device.NotifyWhenIdle(_spec.Id));
        Timers.StartSingleTimer("close", new CloseTimeout(), _spec.Profile.Watchdog * 2);
    }

    /// <summary>What every state takes in: answers of its children, the device, exports and the manager, and lifetime.</summary>
    private void Facts()
    {
        Receive<ContextProtocol.MapDone>(m => m.ReplyTo.Tell(_buffers.MapEnded(m)));
        Receive<ContextProtocol.UnmapDone>(m => m.ReplyTo.Tell(_buffers.UnmapEnded(m)));
        Receive<ContextProtocol.CopyPieces>(m => MappingCopy.Pieces(m, _spaces, _buffers, _name));
        Receive<ContextProtocol.CopyDone>(m => MappingCopy.Done(m, _buffers));
        Receive<Device.ExportCreated>(m => _dmaBufs.Created(m));
        Receive<ContextProtocol.ExportFailed>(m => m.ReplyTo.Tell(m.Error));
        // An export that ends without a revoke (its node lost, it failed) ends every import of it: watched.
        Receive<ContextProtocol.AttachedLocal>(m => Context.Watch(_dmaBufs.Attached(m)));
        Receive<ContextProtocol.AttachedRemote>(m => Context.Watch(_dmaBufs.Attached(m)));
        Receive<ContextProtocol.AttachFailed>(m => m.ReplyTo.Tell(m.Error));
        Receive<ContextProtocol.ImportRevoked>(m => _buffers.Revoke(s => s.Export == m.Export, m.Error));
        Receive<ContextProtocol.ExportReleased>(m => _buffers.ExportRemoved(m.Export));
        Receive<ContextProtocol.SubmissionFailed>(m => (_faults, _lastFault) = (_faults + 1, $"{m.Fence}: {m.Error}"));
        Receive<ContextProtocol.DeviceStatusChanged>(m => _deviceStatus = m.Status);
        Receive<Terminated>(m => _dmaBufs.ExportEnded(m));
        Receive<ChildFailed>(m => Stop(failure: new FabricError(ErrorCode.EIO, $"context {_name} failed: its {m.Child} threw {m.Type}")));
        Receive<ClientGone>(_ => Stop(clientGone: true));
    }

    private void Stop(FabricError? failure = null, bool clientGone = false)
    {
        (_failure, _clientGone) = (_failure ?? failure, _clientGone || clientGone);
        Context.Stop(Self);
    }

    private ContextInfo Info() => new(_spec.Device, _spec.Id, _buffers.Count, _buffers.Bytes, _spaces.Count, _buffers.Exports.Count,
        _buffers.Imports, _submissions, _faults, _lastFault);

    private FabricError? DeviceBusy(string what) => ContextChecks.DeviceBusy(_deviceStatus, _name, _spec.Device, what);

    private void HostAccess(BufferHandle handle, long offset, int length, Access needed, byte[]? write)
    {
        if (!_buffers.TryHostAccess(handle, offset, length, needed, out var buffer, out var error)) Sender.Tell(error!);
        else HostTransfer.Run(buffer, offset, length, write, _spec.DataPlane, Sender, _name);
    }

    private AddressSpaceCreated CreateSpace()
    {
        var id = new AddressSpaceId(++_nextSpace);
        var spec = new AddressSpace.Spec(id, $"{id} of {_name}", _spec.Profile, _spec.Device, _spec.Id, Self, _spec.DeviceActor, _spec.Faults);
        _spaces[id] = Context.ActorOf(AddressSpace.Props(spec), $"as-{id.Value}");
        return new AddressSpaceCreated(id);
    }

    private void WithSpace(AddressSpaceId id, Action<IActorRef> use)
    {
        if (_spaces.TryGetValue(id, out var space)) use(space);
        else Sender.Tell(FabricError.NotFound($"{_name} has no address space {id}"));
    }

    private void OnDestroySpace(DestroyAddressSpace m)
    {
        if (_attached == m.Id)
            Sender.Tell(new FabricError(ErrorCode.EBUSY, $"{_name} cannot destroy {m.Id}: {_spec.Device} is attached to it; detach it first"));
        else WithSpace(m.Id, space => { _spaces.Remove(m.Id); space.Tell(new AddressSpace.Destroy(Sender)); });
    }

    private void OnAttach(AttachDevice m) => WithSpace(m.Id, space =>
    {
        if (_attached == m.Id) Sender.Tell(new Ack()); // attached there already: a no-op
        else
        {
            _spec.Manager.Tell(new DeviceManager.ClaimGroup(_spec.IommuGroup, _spec.Device, $"{m.Id} of {_name}", m.Id, space, Self));
            var replyTo = Sender;
            Become(() => Attaching(m.Id, replyTo));
        }
    });

    private object OnDetach(DetachDevice m)
    {
        if (_attached != m.Id || !_spaces.TryGetValue(m.Id, out var space)) return FabricError.Invalid($"{_name}: {_spec.Device} is not attached to {m.Id}");
        _attached = null;
        Detach(space);
        return new Ack();
    }

    private void Detach(IActorRef space)
    {
        space.Tell(new AddressSpace.SetAttached(false));
        _spec.Manager.Tell(new DeviceManager.ReleaseGroup(space));
    }

    private void OnMap(Map m)
    {
        var refused = ContextChecks.Map(m, _name, _spaces.ContainsKey(m.Space)) ?? DeviceBusy($"map {m.Handle}");
        if (refused is null && _buffers.TryBeginMap(m.Handle, m.Offset, m.Length, m.Access, out var buffer, out var length, out refused))
        {
            _spec.Faults?.Pass(FaultPlan.Sites.ContextMap, _name);
            _spaces[m.Space].Tell(new AddressSpace.MapBuffer(buffer, m.Offset, length, m.Access, m.Iova?.Value, Sender));
        }
        else Sender.Tell(refused!);
    }

    /// <summary>
    /// Submissions go, in order and as one message, to the attached address space, which decodes, translates and
    /// queues them; refused here while the device is not operational or nothing is attached.
    /// </summary>
    private void Submit(ImmutableArray<Submit> submits)
    {
        if (CannotSubmit("submit") is { } refused)
            foreach (var m in submits) SubmitReply.For(m, Sender).Rejected(refused);
        else
        {
            _submissions += submits.Length;
            _spaces[_attached!.Value].Tell(new AddressSpace.Resolve(submits, Sender));
        }
    }

    /// <summary>Device-side tasks go to the runner (started with the first), which submits them here like a client would.</summary>
    private void RunTasks(TaskRequests.RunTasks m)
    {
        if (CannotSubmit("run tasks") is { } refused) Sender.Tell(new TaskRequests.TasksRan([.. m.Tasks.Select(t => new TaskRequests.TaskOutcome(t.Tag, refused, [], 0))]));
        else Runner().Tell(new TaskRunner.Run(m, _attached!.Value, Sender));
    }

    private IActorRef Runner() => _tasks ??= Context.ActorOf(TaskRunner.Props(new(_spec.Device, _name, _spec.Profile.PageSize)), "tasks");

    private FabricError? CannotSubmit(string what) => DeviceBusy(what) ?? (_attached is null
        ? FabricError.Invalid($"{_name} has no address space attached: attach {_spec.Device} to one before it can {what}") : null);

    /// <summary>Address spaces hold mappings of this context's memory: one that throws is stopped, and the context with it.</summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new StopOnFailure(_log, _name, (child, e) => _dmaBufs.Self.Tell(new ChildFailed(child.Path.Name, e.GetType().Name)));

    /// <summary>A handler that throws fails the context (the device stops it); the failure is kept for the client.</summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        try { return base.AroundReceive(receive, message); }
        catch (Exception e)
        {
            _failure ??= new FabricError(ErrorCode.EIO, $"context {_name} failed: {e.GetType().Name} while handling {message.GetType().Name}");
            throw;
        }
    }

    /// <summary>
    /// Runs after the address spaces (children) have stopped and unmapped: frees every buffer no export holds,
    /// detaches every import and drops this context's hold on each export (revokes them after a failure).
    /// </summary>
    protected override void PostStop()
    {
        if (_closeReplyTo is null) // a close aborted its work already
            _spec.DeviceActor.Tell(new Device.AbortContext(_spec.Id, _failure ?? new FabricError(ErrorCode.EIO, $"aborted: context {_name} is gone")));
        _dmaBufs.Release(_failure);
        foreach (var buffer in _buffers.RemoveAll()) buffer.Release(_spec.Imports);
        if (_closeReplyTo is not null && _failure is null) _closeReplyTo.Tell(new Closed(_spec.Id));
        else if (!_clientGone)
            _spec.Client.Tell(new ContextFailed(_spec.Id, Self, _failure ?? new FabricError(ErrorCode.ENODEV,
                $"context {_name} was torn down with its device {_spec.Device}")));
    }
}
