using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Devices.Internal.Commands;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.Memory;
using MessagePack;
using static Fabric.Core.Protocol.ContextRequests;
using static Fabric.Devices.ContextProtocol;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="ContextProtocol"/>. A context: one open of a device (a Linux open file of /dev/accel/accelN). It owns buffer handles, address spaces
/// (its children) and the exports it made, and death-watches its client: Close, the client's stop, or the loss of
/// the client's node stops it, and stopping releases everything. Answers <see cref="ContextRequests"/>.
/// <code>
///   Open ──Close / client gone──▶ stopped: address spaces unmap, buffers free, imports detach, exports dropped
/// </code>
/// </summary>
internal sealed unsafe class ContextActor : ReceiveActor
{
    private readonly ContextProtocol.Spec _spec;
    private readonly string _name;
    private readonly Dictionary<BufferHandle, DeviceBuffer> _buffers = [];
    private readonly Dictionary<AddressSpaceId, IActorRef> _spaces = [];
    private readonly Dictionary<ExportId, (IActorRef Actor, DeviceBuffer Buffer)> _exports = [];
    private AddressSpaceId? _attached;
    private (AddressSpaceId Space, IActorRef ReplyTo)? _attaching;
    private IActorRef? _closeReplyTo;
    private long _nextHandle;
    private long _nextSpace;
    private long _submissions;
    private long _faults;
    private string? _lastFault;

    private sealed record ClientGone;

    public ContextActor(ContextProtocol.Spec spec)
    {
        _spec = spec;
        _name = $"{spec.Device}/{spec.Id}";
        Context.WatchWith(spec.Client, new ClientGone());

        Receive<Allocate>(OnAllocate);
        Receive<Free>(OnFree);
        Receive<WriteBuffer>(OnWrite);
        Receive<ReadBuffer>(OnRead);
        Receive<CreateAddressSpace>(_ => OnCreateSpace());
        Receive<DestroyAddressSpace>(OnDestroySpace);
        Receive<AttachDevice>(OnAttach);
        Receive<DeviceManager.GroupClaimResult>(OnGroupClaimed);
        Receive<DetachDevice>(OnDetach);
        Receive<Map>(OnMap);
        Receive<Unmap>(m => WithSpace(m.Space, space => space.Tell(new AddressSpace.Unmap(m.Iova, m.Length, Sender))));
        Receive<ReadIova>(m => WithSpace(m.Space, space => space.Tell(new AddressSpace.ReadIova(m.Iova, m.Length, Sender))));
        Receive<WriteIova>(m => WithSpace(m.Space, space => space.Tell(new AddressSpace.WriteIova(m.Iova, m.Data, Sender))));
        Receive<Submit>(m => Forward([Check(m)]));
        Receive<SubmitBatch>(m => Forward([.. m.Submits.Select(Check)]));
        Receive<Export>(OnExport);
        Receive<Device.ExportCreated>(OnExportCreated);
        Receive<ContextProtocol.ExportFailed>(m => m.ReplyTo.Tell(m.Error));
        Receive<Import>(OnImport);
        Receive<ContextProtocol.AttachedLocal>(OnAttached);
        Receive<ContextProtocol.AttachFailed>(m => m.ReplyTo.Tell(m.Error));
        Receive<ContextProtocol.AttachedRemote>(OnAttachedRemote);
        Receive<Terminated>(OnExportTerminated);
        Receive<ContextProtocol.ImportRevoked>(OnImportRevoked);
        Receive<ContextProtocol.ExportReleased>(OnExportReleased);
        Receive<Revoke>(OnRevoke);
        Receive<ContextProtocol.SubmissionFailed>(m =>
        {
            _faults++;
            _lastFault = $"{m.Fence}: {m.Error}";
        });
        Receive<GetContextInfo>(_ => Sender.Tell(Info()));
        Receive<Close>(_ =>
        {
            _closeReplyTo = Sender;
            Context.Stop(Self);
        });
        Receive<ClientGone>(_ => Context.Stop(Self));
    }

    private ContextInfo Info() => new(_spec.Device, _spec.Id,
        _buffers.Count, _buffers.Values.Sum(b => b.Size), _spaces.Count, _exports.Count,
        _buffers.Values.Count(b => b.ImportedFrom is not null), _submissions, _faults, _lastFault);

    // ── buffers ────────────────────────────────────────────────────────────────────────────────

    private void OnAllocate(Allocate m)
    {
        if (m.Size <= 0)
        {
            Sender.Tell(FabricError.Invalid($"{_name} cannot allocate {m.Size} bytes: the size must be positive"));
            return;
        }
        if (m.Alignment < 0 || (m.Alignment & (m.Alignment - 1)) != 0)
        {
            Sender.Tell(FabricError.Invalid($"{_name} cannot allocate with alignment {m.Alignment}: it must be 0 or a power of two"));
            return;
        }
        if ((m.Flags & ~(AllocationFlags.Contiguous | AllocationFlags.NoExport)) != 0)
        {
            Sender.Tell(FabricError.Invalid($"{_name} cannot allocate with flags 0x{(int)m.Flags:x}: unknown flag bits"));
            return;
        }
        var pageSize = _spec.Profile.PageSize;
        if (m.Size > _spec.Profile.MemoryBytes)
        {
            Sender.Tell(new FabricError(ErrorCode.ENOMEM,
                $"{_name} cannot allocate {m.Size} bytes: {_spec.Device} has only {_spec.Profile.MemoryBytes} bytes of memory"));
            return;
        }
        var size = (m.Size + pageSize - 1) / pageSize * pageSize;
        var block = _spec.Memory.TryAllocate(size, Math.Max(m.Alignment, pageSize));
        if (block is null)
        {
            var stats = _spec.Memory.Stats;
            Sender.Tell(new FabricError(ErrorCode.ENOMEM,
                $"{_name} cannot allocate {size} bytes: {_spec.Device} has {stats.Free} of {stats.Capacity} bytes free, the largest free range is {stats.LargestFree} bytes"));
            return;
        }
        var handle = new BufferHandle(++_nextHandle);
        _buffers[handle] = DeviceBuffer.Allocated(handle, block, m.Flags);
        Sender.Tell(new BufferAllocated(handle, block.Size));
    }

    private DeviceBuffer? Buffer(BufferHandle handle)
    {
        if (_buffers.TryGetValue(handle, out var buffer)) return buffer;
        Sender.Tell(FabricError.Invalid($"{_name} has no buffer {handle}"));
        return null;
    }

    private void OnFree(Free m)
    {
        if (Buffer(m.Handle) is not { } buffer) return;
        if (buffer.Mappings > 0)
        {
            Sender.Tell(FabricError.Invalid($"{_name} cannot free {buffer}: it is still mapped ({buffer.Mappings} mappings); unmap it first"));
            return;
        }
        _buffers.Remove(m.Handle);
        ReleaseBuffer(buffer);
        Sender.Tell(new Ack());
    }

    private void ReleaseBuffer(DeviceBuffer buffer)
    {
        if (buffer.ImportedFrom is { } import)
        {
            import.ExportActor.Tell(new DmaBufExport.Detach(import.Attachment));
            _spec.Imports.Released();
        }
        else buffer.Block.Release();
        // (a remote import holds no local memory: detaching is all there is to release)
    }

    /// <summary>Checks a host access to a buffer range and pins the block for it; null when refused (already answered).</summary>
    private DeviceBuffer? PinForHostAccess(BufferHandle handle, long offset, long length, Access needed)
    {
        if (Buffer(handle) is not { } buffer) return null;
        if (offset < 0 || length < 0 || offset > buffer.Size || length > buffer.Size - offset)
        {
            Sender.Tell(FabricError.Invalid($"{_name}: [{offset}, {offset}+{length}) is outside {buffer} of {buffer.Size} bytes"));
            return null;
        }
        if ((buffer.Access & needed) != needed)
        {
            Sender.Tell(new FabricError(ErrorCode.EPERM, $"{_name} may not {(needed == Access.Write ? "write" : "read")} {buffer}: it allows {buffer.Access}"));
            return null;
        }
        if (buffer.RevokedError is { } revoked)
        {
            Sender.Tell(revoked with { Message = $"{_name} cannot use {buffer}: {revoked.Message}" });
            return null;
        }
        if (buffer.Remote is null && !buffer.Block.TryAcquire())
        {
            Sender.Tell(new FabricError(ErrorCode.EIO, $"{_name} cannot use {buffer}: its memory is gone"));
            return null;
        }
        return buffer; // local memory is pinned for the caller; remote memory is reached over the data plane
    }

    private void OnWrite(WriteBuffer m)
    {
        if (PinForHostAccess(m.Handle, m.Offset, m.Data.Length, Access.Write) is not { } buffer) return;
        if (buffer.Remote is { } remote)
        {
            _spec.DataPlane!.Client.WriteAsync(remote, m.Offset, m.Data.Length, (at, chunk) => m.Data.AsMemory((int)at, chunk), CancellationToken.None)
                .PipeTo(Sender, success: () => new Ack(), failure: e => RemoteFailure(e, buffer));
            return;
        }
        try { m.Data.AsSpan().CopyTo(new Span<byte>(buffer.Block.Pointer + m.Offset, m.Data.Length)); }
        finally { buffer.Block.Release(); }
        Sender.Tell(new Ack());
    }

    private void OnRead(ReadBuffer m)
    {
        if (PinForHostAccess(m.Handle, m.Offset, m.Length, Access.Read) is not { } buffer) return;
        if (buffer.Remote is { } remote)
        {
            var bytes = new byte[m.Length];
            _spec.DataPlane!.Client.ReadAsync(remote, m.Offset, m.Length, (at, chunk) => bytes.AsMemory((int)at, chunk), CancellationToken.None)
                .PipeTo(Sender, success: () => new BufferData(bytes), failure: e => RemoteFailure(e, buffer));
            return;
        }
        byte[] data;
        try { data = new ReadOnlySpan<byte>(buffer.Block.Pointer + m.Offset, m.Length).ToArray(); }
        finally { buffer.Block.Release(); }
        Sender.Tell(new BufferData(data));
    }

    private object RemoteFailure(Exception e, DeviceBuffer buffer) =>
        e is FabricException fabric
            ? fabric.Error with { Message = $"{_name} could not reach {buffer}: {fabric.Error.Message}" }
            : new FabricError(ErrorCode.EIO, $"{_name} could not reach {buffer}: {e.Message}");

    // ── address spaces ─────────────────────────────────────────────────────────────────────────

    private void OnCreateSpace()
    {
        var id = new AddressSpaceId(++_nextSpace);
        var spec = new AddressSpace.Spec(id, $"{id} of {_name}", (ulong)_spec.Profile.PageSize, _spec.Device, _spec.Id, Self, _spec.DeviceActor);
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
        if (_attached == m.Id || _attaching?.Space == m.Id)
        {
            Sender.Tell(new FabricError(ErrorCode.EBUSY, $"{_name} cannot destroy {m.Id}: {_spec.Device} is attached to it; detach it first"));
            return;
        }
        WithSpace(m.Id, space =>
        {
            _spaces.Remove(m.Id);
            space.Tell(new AddressSpace.Destroy(Sender));
        });
    }

    private void OnAttach(AttachDevice m)
    {
        if (_attaching is not null)
        {
            Sender.Tell(new FabricError(ErrorCode.EBUSY, $"{_name} is already attaching {_spec.Device} to {_attaching.Value.Space}"));
            return;
        }
        if (_attached is { } current)
        {
            Sender.Tell(new FabricError(ErrorCode.EBUSY, $"{_name}: {_spec.Device} is already attached to {current}; detach it first"));
            return;
        }
        WithSpace(m.Id, space =>
        {
            _attaching = (m.Id, Sender);
            _spec.Manager.Tell(new DeviceManager.ClaimGroup(_spec.IommuGroup, _spec.Device, $"{m.Id} of {_name}", m.Id, space, Self));
        });
    }

    private void OnGroupClaimed(DeviceManager.GroupClaimResult m)
    {
        if (_attaching is not { } attaching || attaching.Space != m.Space) return;
        _attaching = null;
        if (m.Error is { } error)
        {
            attaching.ReplyTo.Tell(error);
            return;
        }
        _attached = m.Space;
        attaching.ReplyTo.Tell(new Ack());
    }

    private void OnDetach(DetachDevice m)
    {
        if (_attached != m.Id)
        {
            Sender.Tell(FabricError.Invalid($"{_name}: {_spec.Device} is not attached to {m.Id}"));
            return;
        }
        _attached = null;
        _spec.Manager.Tell(new DeviceManager.ReleaseGroup(_spaces[m.Id]));
        Sender.Tell(new Ack());
    }

    private void OnMap(Map m)
    {
        if (!_spaces.TryGetValue(m.Space, out var space))
        {
            Sender.Tell(FabricError.NotFound($"{_name} has no address space {m.Space}"));
            return;
        }
        if (!_buffers.TryGetValue(m.Handle, out var buffer))
        {
            Sender.Tell(FabricError.NotFound($"{_name} has no buffer {m.Handle}"));
            return;
        }
        var length = m.Length < 0 ? buffer.Size - m.Offset : m.Length;
        if (m.Offset < 0 || length < 0 || m.Offset > buffer.Size || length > buffer.Size - m.Offset)
        {
            Sender.Tell(FabricError.Invalid($"{_name} cannot map [{m.Offset}, {m.Offset}+{length}) of {buffer}: it has {buffer.Size} bytes"));
            return;
        }
        if ((m.Access & ~buffer.Access) != 0)
        {
            Sender.Tell(new FabricError(ErrorCode.EPERM, $"{_name} cannot map {buffer} for {m.Access}: the handle allows only {buffer.Access}"));
            return;
        }
        if (buffer.RevokedError is { } revoked)
        {
            Sender.Tell(new FabricError(ErrorCode.EIO, $"{_name} cannot map {buffer}: {revoked.Message}"));
            return;
        }
        buffer.AddMapping();
        space.Tell(new AddressSpace.MapBuffer(buffer, m.Offset, length, m.Access, m.Iova, Sender));
    }

    // ── submissions ────────────────────────────────────────────────────────────────────────────

    private const int MaxFenceSlots = 64;

    /// <summary>Checks and decodes one submission; null when it was rejected (already answered).</summary>
    private AddressSpace.Resolvable? Check(Submit m)
    {
        var reply = SubmitReply.For(m, Sender);
        if (_attached is null)
        {
            reply.Rejected(FabricError.Invalid($"{_name} has no address space attached: attach {_spec.Device} to one before submitting"));
            return null;
        }
        if (m.Queue < 0 || m.Queue >= _spec.Profile.Queues)
        {
            reply.Rejected(FabricError.Invalid($"{_name}: {_spec.Device} has queues 0 to {_spec.Profile.Queues - 1}, not {m.Queue}"));
            return null;
        }
        var inFences = m.InFences.IsDefault ? [] : m.InFences;
        if (inFences.Length > MaxFenceSlots || m.OutFences is < 0 or > MaxFenceSlots)
        {
            reply.Rejected(FabricError.Invalid($"{_name}: a submission takes at most {MaxFenceSlots} in-fences and {MaxFenceSlots} out-fences"));
            return null;
        }
        if (!CommandDecoder.TryDecode(m.Commands, inFences.Length, m.OutFences, out var program, out var error))
        {
            reply.Rejected(error!);
            return null;
        }
        _submissions++;
        return new AddressSpace.Resolvable(program!, m.Queue, inFences, m.OutFences, reply);
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
        if (Buffer(m.Handle) is not { } buffer) return;
        if (buffer.ImportedFrom is not null)
        {
            Sender.Tell(FabricError.Invalid($"{_name} cannot export {buffer}: an imported buffer is exported only by its owner"));
            return;
        }
        if (buffer.Flags.HasFlag(AllocationFlags.NoExport))
        {
            Sender.Tell(new FabricError(ErrorCode.EPERM, $"{_name} cannot export {buffer}: it was allocated with NoExport"));
            return;
        }
        if (m.Access is not (Access.Read or Access.ReadWrite))
        {
            Sender.Tell(FabricError.Invalid($"{_name} cannot export {buffer} with access {m.Access}: use Read or ReadWrite"));
            return;
        }
        _spec.DeviceActor.Tell(new Device.CreateExport(buffer, _spec.Id, Self, m.Access, Sender));
    }

    private void OnExportCreated(Device.ExportCreated m)
    {
        if (!_buffers.TryGetValue(m.Handle, out var buffer))
        {
            // Freed while the export was being made: the export still holds the memory, as a dma-buf would.
            m.Export.Tell(new DmaBufExport.ExporterClosed());
            m.ReplyTo.Tell(FabricError.NotFound($"{_name}: {m.Handle} was freed while it was being exported"));
            return;
        }
        buffer.AddExport();
        _exports[m.Token.Export] = (m.Export, buffer);
        m.ReplyTo.Tell(new Exported(m.Token, m.Size));
    }

    private void OnExportReleased(ContextProtocol.ExportReleased m)
    {
        if (_exports.Remove(m.Export, out var export)) export.Buffer.RemoveExport();
    }

    private void OnRevoke(Revoke m)
    {
        if (_exports.TryGetValue(m.Export, out var export))
            export.Actor.Tell(new DmaBufExport.Revoke(m.Export, Self, _name, Sender));
        else
            _spec.Manager.Tell(new DmaBufExport.Revoke(m.Export, Self, _name, Sender));
    }

    private void OnImport(Import m) =>
        _spec.Manager.Tell(new DmaBufExport.Attach(m.Token, Self, _name, Sender));

    private void OnAttached(ContextProtocol.AttachedLocal m)
    {
        var handle = new BufferHandle(++_nextHandle);
        var import = new DeviceBuffer.Import(m.Export, m.ExportActor, m.Attachment);
        _buffers[handle] = DeviceBuffer.Imported(handle, m.Block, m.Size, m.Access, import);
        _spec.Imports.Added();
        m.ReplyTo.Tell(new Imported(handle, m.Size, m.Access));
    }

    private void OnAttachedRemote(ContextProtocol.AttachedRemote m)
    {
        if (_spec.DataPlane is null)
        {
            m.ExportActor.Tell(new DmaBufExport.Detach(m.Remote.Attachment));
            m.ReplyTo.Tell(FabricError.Invalid($"{_name} cannot import {m.Remote.Export} from another node: this node has no data plane"));
            return;
        }
        var handle = new BufferHandle(++_nextHandle);
        var import = new DeviceBuffer.Import(m.Remote.Export, m.ExportActor, m.Remote.Attachment);
        _buffers[handle] = DeviceBuffer.RemoteImported(handle, m.Remote, import);
        _spec.Imports.Added();
        Context.Watch(m.ExportActor); // its node's loss ends every import of it
        m.ReplyTo.Tell(new Imported(handle, m.Remote.Size, m.Remote.Access));
    }

    /// <summary>An export this context imports from another node is gone: revoked imports already know; a lost node is told here.</summary>
    private void OnExportTerminated(Terminated m)
    {
        foreach (var buffer in _buffers.Values.Where(b => b.ImportedFrom?.ExportActor.Equals(m.ActorRef) == true))
            buffer.MarkRevoked(m.AddressTerminated
                ? new FabricError(ErrorCode.ENODEV, $"{buffer.ImportedFrom!.Export} is gone: its node {buffer.ImportedFrom.Export.Device.Node} was lost")
                : new FabricError(ErrorCode.EIO, $"{buffer.ImportedFrom!.Export} ended"));
    }

    private void OnImportRevoked(ContextProtocol.ImportRevoked m)
    {
        foreach (var buffer in _buffers.Values)
            if (buffer.ImportedFrom?.Export == m.Export) buffer.MarkRevoked(m.Error);
    }

    // ── release ────────────────────────────────────────────────────────────────────────────────

    /// <summary>
    /// Runs after the address spaces (children) have stopped and unmapped: frees every buffer no export holds,
    /// detaches every import and drops this context's hold on each export, in reverse order of set-up.
    /// </summary>
    protected override void PostStop()
    {
        foreach (var (export, _) in _exports.Values) export.Tell(new DmaBufExport.ExporterClosed());
        foreach (var buffer in _buffers.Values) ReleaseBuffer(buffer);
        _exports.Clear();
        _buffers.Clear();
        _closeReplyTo?.Tell(new Closed(_spec.Id));
    }
}
