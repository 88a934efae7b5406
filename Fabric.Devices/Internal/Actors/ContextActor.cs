using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Devices.Internal.Commands;
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
internal sealed unsafe class ContextActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private const int MaxStashed = 10_000;
    private readonly ContextProtocol.Spec _spec;
    private readonly string _name;
    private readonly BufferTable _buffers;
    private readonly Dictionary<AddressSpaceId, IActorRef> _spaces = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _self;
    private AddressSpaceId? _attached;
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
        _buffers = new BufferTable(spec.Id, _name);
        _self = Self;
        Context.WatchWith(spec.Client, new ClientGone());
        Open();
    }

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    // ── states ────────────────────────────────────────────────────────────────────────────────

    private void Open()
    {
        Facts();
        Receive<Allocate>(OnAllocate);
        Receive<Free>(OnFree);
        Receive<WriteBuffer>(m => HostAccess(m.Handle, m.Offset, m.Data.Length, Access.Write, m.Data));
        Receive<ReadBuffer>(m => HostAccess(m.Handle, m.Offset, m.Length, Access.Read, null));
        Receive<CreateAddressSpace>(_ => OnCreateSpace());
        Receive<DestroyAddressSpace>(OnDestroySpace);
        Receive<AttachDevice>(OnAttach);
        Receive<DetachDevice>(OnDetach);
        Receive<Map>(OnMap);
        Receive<Unmap>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.Unmap(m.Iova, m.Length, _buffers.Exported, Sender))));
        Receive<ReadIova>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.ReadIova(m.Iova, m.Length, Sender))));
        Receive<WriteIova>(m => WithSpace(m.Space, s => s.Tell(new AddressSpace.WriteIova(m.Iova, m.Data, Sender))));
        Receive<Submit>(m => Forward([Check(m)]));
        Receive<SubmitBatch>(m => Forward([.. m.Submits.Select(Check)]));
        Receive<Export>(OnExport);
        Receive<Import>(m => _spec.Manager.Tell(new DmaBufExport.Attach(m.Token, Self, _name, Sender)));
        Receive<Revoke>(OnRevoke);
        Receive<GetContextInfo>(_ => Sender.Tell(Info()));
        Receive<Close>(_ => BeginClose());
    }

    /// <summary>Waiting for the group claim and the address space's narrowing; client requests wait in a bounded stash.</summary>
    private void Attaching(AddressSpaceId space, IActorRef replyTo)
    {
        Facts();
        Receive<DeviceManager.GroupClaimResult>(m =>
        {
            if (m.Error is { } error) EndAttach(replyTo, error);
            else _spaces[space].Tell(new AddressSpace.SetAttached(true));
        });
        Receive<ContextProtocol.SpaceAttachDone>(m =>
        {
            if (m.Error is { } error)
            {
                _spec.Manager.Tell(new DeviceManager.ReleaseGroup(_spaces[space]));
                EndAttach(replyTo, error);
                return;
            }
            if (_attached is { } old && _spaces.TryGetValue(old, out var previous)) Detach(previous); // iommufd's replace
            _attached = space;
            EndAttach(replyTo, null);
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
        Receive<ContextProtocol.MapDone>(OnMapDone);
        Receive<ContextProtocol.UnmapDone>(OnUnmapDone);
        Receive<Device.ExportCreated>(OnExportCreated);
        Receive<ContextProtocol.ExportFailed>(m => m.ReplyTo.Tell(m.Error));
        Receive<ContextProtocol.AttachedLocal>(m => Imported(m.ReplyTo, m.ExportActor,
            _buffers.AddImport(new(m.Export, m.ExportActor, m.Attachment), m.Size, m.Access, m.Block, null)));
        Receive<ContextProtocol.AttachedRemote>(OnAttachedRemote);
        Receive<ContextProtocol.AttachFailed>(m => m.ReplyTo.Tell(m.Error));
        Receive<ContextProtocol.ImportRevoked>(m => _buffers.Revoke(s => s.Export == m.Export, m.Error));
        Receive<ContextProtocol.ExportReleased>(m => _buffers.ExportRemoved(m.Export));
        Receive<ContextProtocol.SubmissionFailed>(m => (_faults, _lastFault) = (_faults + 1, $"{m.Fence}: {m.Error}"));
        Receive<ContextProtocol.DeviceStatusChanged>(m => _deviceStatus = m.Status);
        Receive<Terminated>(m => _buffers.Revoke(s => s.ExportActor.Equals(m.ActorRef), m.AddressTerminated
            ? new FabricError(ErrorCode.ENODEV, $"the export is gone: its node {m.ActorRef.Path.Address} was lost")
            : new FabricError(ErrorCode.EIO, $"the export ended")));
        Receive<ChildFailed>(m => Fail(new FabricError(ErrorCode.EIO, $"context {_name} failed: its {m.Child} threw {m.Type}")));
        Receive<ClientGone>(_ =>
        {
            _clientGone = true;
            Context.Stop(Self);
        });
    }

    private ContextInfo Info() => new(_spec.Device, _spec.Id, _buffers.Count, _buffers.Bytes, _spaces.Count, _buffers.Exports.Count,
        _buffers.Imports, _submissions, _faults, _lastFault);

    private FabricError? DeviceBusy(string what) => ContextChecks.DeviceBusy(_deviceStatus, _name, _spec.Device, what);

    // ── buffers ────────────────────────────────────────────────────────────────────────────────

    private void OnAllocate(Allocate m)
    {
        if (DeviceBusy($"allocate {m.Size} bytes") is { } busy) Sender.Tell(busy);
        else if (_buffers.TryAllocate(_spec.Memory, _spec.Profile, _spec.Device, m.Size, m.Alignment, m.Flags, out var buffer, out var error))
            Sender.Tell(new BufferAllocated(buffer.Handle, buffer.Size));
        else Sender.Tell(error!);
    }

    private void OnFree(Free m)
    {
        if (!_buffers.TryFree(m.Handle, out var buffer, out var error))
        {
            Sender.Tell(error!);
            return;
        }
        buffer.Release(_spec.Imports);
        Sender.Tell(new Ack());
    }

    private void HostAccess(BufferHandle handle, long offset, int length, Access needed, byte[]? write)
    {
        if (_buffers.TryHostAccess(handle, offset, length, needed, out var buffer, out var error))
            HostTransfer.Run(buffer, offset, length, write, _spec.DataPlane, Sender, _name);
        else Sender.Tell(error!);
    }

    // ── address spaces ─────────────────────────────────────────────────────────────────────────

    private void OnCreateSpace()
    {
        var id = new AddressSpaceId(++_nextSpace);
        var spec = new AddressSpace.Spec(id, $"{id} of {_name}", (ulong)_spec.Profile.PageSize, _spec.Device, _spec.Id, Self, _spec.DeviceActor, _spec.Faults);
        _spaces[id] = Context.ActorOf(AddressSpace.Props(spec), $"as-{id.Value}");
        Sender.Tell(new AddressSpaceCreated(id));
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
        if (_attached == m.Id)
        {
            Sender.Tell(new Ack()); // attached there already: a no-op
            return;
        }
        _spec.Manager.Tell(new DeviceManager.ClaimGroup(_spec.IommuGroup, _spec.Device, $"{m.Id} of {_name}", m.Id, space, Self));
        var replyTo = Sender;
        Become(() => Attaching(m.Id, replyTo));
    });

    private void OnDetach(DetachDevice m)
    {
        if (_attached != m.Id || !_spaces.TryGetValue(m.Id, out var space))
        {
            Sender.Tell(FabricError.Invalid($"{_name}: {_spec.Device} is not attached to {m.Id}"));
            return;
        }
        _attached = null;
        Detach(space);
        Sender.Tell(new Ack());
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

    private void OnMapDone(ContextProtocol.MapDone m)
    {
        if (m.Error is { } error) _buffers.MappingsRemoved([m.Handle]);
        m.ReplyTo.Tell(m.Error ?? (object)new Mapped(m.Iova));
    }

    private void OnUnmapDone(ContextProtocol.UnmapDone m)
    {
        _buffers.MappingsRemoved(m.Removed);
        m.ReplyTo.Tell(m.Error ?? (m.Destroyed ? new Ack() : (object)new Unmapped(m.Bytes)));
    }

    // ── submissions ────────────────────────────────────────────────────────────────────────────

    /// <summary>Checks and decodes one submission; null when it was rejected (already answered).</summary>
    private AddressSpace.Resolvable? Check(Submit m)
    {
        var reply = SubmitReply.For(m, Sender);
        DecodedProgram? program = null;
        if ((DeviceBusy($"submit to queue {m.Queue}")
             ?? ContextChecks.Submit(m, _name, _spec.Device, _spec.Profile, _attached is not null, out program)) is { } error)
        {
            reply.Rejected(error);
            return null;
        }
        _submissions++;
        return new AddressSpace.Resolvable(program!, m.Queue, m.InFences.IsDefault ? [] : m.InFences, m.OutFences, reply);
    }

    /// <summary>Hands the submissions that passed to the attached address space, in order, as one message.</summary>
    private void Forward(ImmutableArray<AddressSpace.Resolvable?> checkedSubmissions)
    {
        var passed = checkedSubmissions.OfType<AddressSpace.Resolvable>().ToImmutableArray();
        if (passed.Length > 0 && _attached is { } attached) _spaces[attached].Tell(new AddressSpace.Resolve(passed));
    }

    // ── exports and imports ────────────────────────────────────────────────────────────────────

    private void OnExport(Export m)
    {
        if (_buffers.TryBeginExport(m.Handle, m.Access, out var buffer, out var error))
            _spec.DeviceActor.Tell(new Device.CreateExport(buffer, _spec.Id, Self, m.Access, Sender));
        else Sender.Tell(error!);
    }

    private void OnExportCreated(Device.ExportCreated m)
    {
        if (!_buffers.ExportAdded(m.Token.Export, m.Export, m.Handle))
        {
            // Freed while the export was being made: the export still holds the memory, as a dma-buf would.
            m.Export.Tell(new DmaBufExport.ExporterClosed());
            m.ReplyTo.Tell(new FabricError(ErrorCode.EINVAL, $"{_name}: {m.Handle} was freed while it was being exported"));
            return;
        }
        m.ReplyTo.Tell(new Exported(m.Token, m.Size));
    }

    private void OnRevoke(Revoke m)
    {
        var target = _buffers.Exports.TryGetValue(m.Export, out var export) ? export.Actor : _spec.Manager;
        target.Tell(new DmaBufExport.Revoke(m.Export, Self, _name, Sender));
    }

    private void OnAttachedRemote(ContextProtocol.AttachedRemote m)
    {
        var unreachable = m.Unreachable ?? (_spec.DataPlane is null ? $"{_spec.Device}'s node has no data plane to reach {m.Export} on another node" : null);
        var remote = unreachable is null ? m.Remote : null;
        Imported(m.ReplyTo, m.ExportActor, _buffers.AddImport(new(m.Export, m.ExportActor, m.Attachment), m.Size, m.Access, null, remote, unreachable));
    }

    private void Imported(IActorRef replyTo, IActorRef export, BufferView buffer)
    {
        _spec.Imports.Added();
        Context.Watch(export); // an export that ends without a revoke (its node lost, it failed) ends every import of it
        replyTo.Tell(new Imported(buffer.Handle, buffer.Size, buffer.Access));
    }

    // ── failure and release ────────────────────────────────────────────────────────────────────

    private void Fail(FabricError error)
    {
        _failure ??= error;
        Context.Stop(Self);
    }

    /// <summary>Address spaces hold mappings of this context's memory: one that throws is stopped, and the context with it.</summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new StopOnFailure(_log, _name, (child, e) => _self.Tell(new ChildFailed(child.Path.Name, e.GetType().Name)));

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
        foreach (var (export, _) in _buffers.Exports.Values)
            export.Tell(_failure is { } failed ? new DmaBufExport.ExporterFailed(failed with { Message = $"{failed.Message}; its exports are revoked" })
                : new DmaBufExport.ExporterClosed());
        foreach (var buffer in _buffers.RemoveAll()) buffer.Release(_spec.Imports);
        if (_closeReplyTo is not null && _failure is null) _closeReplyTo.Tell(new Closed(_spec.Id));
        else if (!_clientGone)
            _spec.Client.Tell(new ContextFailed(_spec.Id, Self, _failure ?? new FabricError(ErrorCode.ENODEV,
                $"context {_name} was torn down with its device {_spec.Device}")));
    }
}
