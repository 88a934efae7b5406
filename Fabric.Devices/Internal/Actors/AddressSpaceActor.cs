using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.Internal.Execution;
using Fabric.Devices.Internal.Memory;
using Fabric.Devices.Internal.State;
using Commands = Fabric.Devices.Internal.Commands;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="AddressSpace"/>: the only owner of its IOVA map. An unmap wins over the users of a
/// range (iommufd): the mappings leave the map at once, so nothing new can resolve them; the device aborts the
/// submissions still using them (EFAULT) and the unmap is answered only when they have ended.
/// <code>
///   Live ──Destroy──▶ draining users ──last use ended──▶ stopped        (context stop: stopped at once, map torn down)
/// </code>
/// </summary>
internal sealed unsafe class AddressSpaceActor : ReceiveActor
{
    private readonly AddressSpace.Spec _spec;
    private readonly IovaMap<MappedRange> _map;
    private readonly Dictionary<long, PendingUnmap> _unmapping = [];
    private long _nextSerial, _nextUnmap;

    /// <summary>What an IOVA range maps to: a buffer, the offset in it where the range starts, and the mapping's serial.</summary>
    internal sealed record MappedRange(BufferView Buffer, long Offset, long Serial);

    /// <summary>An unmap waiting for the uses of the mappings it removed to end.</summary>
    private sealed record PendingUnmap(ImmutableArray<BufferHandle> Removed, ulong Bytes, IActorRef ReplyTo, bool Destroy);

    public AddressSpaceActor(AddressSpace.Spec spec)
    {
        _spec = spec;
        _map = new IovaMap<MappedRange>(spec.Name); // the host's page size and the whole space until a device attaches

        Receive<AddressSpace.MapBuffer>(OnMap);
        Receive<AddressSpace.Unmap>(m => Unmap(m.Iova, m.Length, m.ReplyTo, destroy: false, m.Exported));
        Receive<AddressSpace.ReadIova>(OnRead);
        Receive<AddressSpace.WriteIova>(OnWrite);
        Receive<AddressSpace.Resolve>(OnResolve);
        Receive<AddressSpace.UsersEnded>(m => { if (_unmapping.Remove(m.Unmap, out var pending)) Complete(pending); });
        Receive<AddressSpace.SetAttached>(m =>
        {
            if (m.Attached) _spec.ContextActor.Tell(new ContextProtocol.SpaceAttachDone(_spec.Id, Attach()));
            else Detach(); // widening cannot fail: no answer
        });
        Receive<AddressSpace.GetRanges>(m => m.ReplyTo.Tell(new IovaRanges([.. _map.UsableRanges.Select(r => new IovaRange(r.Start, r.Last))], _map.PageSize)));
        Receive<AddressSpace.Allow>(m => m.ReplyTo.Tell(_map.TrySetAllowed(m.Ranges, out var e) ? new Ack() : e!));
        Receive<AddressSpace.Reserve>(m => m.ReplyTo.Tell(_map.TryReserve(m.Start, m.Last, $"{_spec.Name}'s own reservation", out var e) ? new Ack() : e!));
        Receive<AddressSpace.CopyOut>(OnCopyOut);
        Receive<AddressSpace.MapPieces>(OnMapPieces);
        Receive<AddressSpace.Destroy>(m => Unmap(0, ulong.MaxValue, m.ReplyTo, destroy: true, exported: []));
    }

    private void OnMap(AddressSpace.MapBuffer m)
    {
        var range = new MappedRange(m.Buffer, m.Offset, ++_nextSerial);
        if (!_map.TryMap(m.Iova, (ulong)m.Length, m.Access, range, out var iova, out var error))
        {
            _spec.ContextActor.Tell(new ContextProtocol.MapDone(m.Buffer.Handle, 0, error, m.ReplyTo));
            return;
        }
        _spec.Faults?.Pass(FaultPlan.Sites.AddressSpaceMap, _spec.Name);
        _spec.ContextActor.Tell(new ContextProtocol.MapDone(m.Buffer.Handle, iova, null, m.ReplyTo));
    }

    /// <summary>The device attaches: the page size becomes its own and the space narrows to its aperture, outside its reserved regions.</summary>
    private FabricError? Attach()
    {
        var profile = _spec.Profile;
        var last = profile.IovaBits >= 64 ? ulong.MaxValue : (1UL << profile.IovaBits) - 1;
        FabricError? error = null;
        var narrowed = _map.TrySetPageSize((ulong)profile.PageSize, out error)
                       && (last == ulong.MaxValue || _map.TryLimitAperture(last, _spec.Device, out error))
                       && profile.ReservedIovas.All(r => _map.TryReserve(r.Start, r.Last, _spec.Device, out error));
        if (narrowed) return null;
        Detach();
        return error! with { Message = $"cannot attach {_spec.Device} to {_spec.Name}: {error!.Message}" };
    }

    /// <summary>The device detaches: its reservations go and the host's page size returns (unless a mapping is not aligned to it).</summary>
    private void Detach()
    {
        _map.Unreserve(_spec.Device);
        _map.TrySetPageSize(IovaMap.HostPageSize, out _);
    }

    private void OnCopyOut(AddressSpace.CopyOut m)
    {
        FabricError? error = null;
        var pieces = ImmutableArray<AddressSpace.Piece>.Empty;
        if (_map.TryGetCovering(m.Iova, m.Length, out var covering, out error))
        {
            if (covering.FirstOrDefault(p => (m.Access & ~p.Mapping.Access) != 0) is { Mapping: not null } narrower)
                error = new FabricError(ErrorCode.EPERM, $"cannot copy {IovaMap.Describe(m.Iova, m.Length)} of {_spec.Name} for {m.Access}: {narrower.Mapping} allows {narrower.Mapping.Access}");
            else pieces = [.. covering.Select(p => new AddressSpace.Piece(p.Mapping.Value.Buffer, p.Mapping.Value.Offset + (long)p.OffsetInMapping, p.Length))];
        }
        _spec.ContextActor.Tell(new ContextProtocol.CopyPieces(pieces, m.Target, m.TargetIova, m.Access, error, m.ReplyTo));
    }

    /// <summary>IOAS_COPY's target: the pieces back to back at a fixed IOVA or one chosen for their total length; all or none.</summary>
    private void OnMapPieces(AddressSpace.MapPieces m)
    {
        var total = m.Pieces.Aggregate(0UL, (sum, p) => sum + p.Length);
        var handles = m.Pieces.Select(p => p.Buffer.Handle).ToImmutableArray();
        var start = m.Iova ?? 0;
        FabricError? error = null;
        if (m.Iova is null && _map.TryMap(null, total, m.Access, new MappedRange(m.Pieces[0].Buffer, 0, 0), out start, out error))
            _map.TryUnmap(start, total, out _, out _, out _); // only to find room for all of them
        var mappedBytes = 0UL;
        foreach (var piece in m.Pieces)
        {
            if (!_map.TryMap(start + mappedBytes, piece.Length, m.Access, new MappedRange(piece.Buffer, piece.Offset, ++_nextSerial), out _, out error)) break;
            mappedBytes += piece.Length;
        }
        if (error is not null && mappedBytes > 0) _map.TryUnmap(start, mappedBytes, out _, out _, out _); // all or none
        _spec.ContextActor.Tell(new ContextProtocol.CopyDone(handles, start, error, m.ReplyTo));
    }

    private void Unmap(ulong iova, ulong length, IActorRef replyTo, bool destroy, ImmutableHashSet<BufferHandle> exported)
    {
        FabricError? Veto(IovaMapping<MappedRange> mapping) => exported.Contains(mapping.Value.Buffer.Handle)
            ? FabricError.Invalid($"cannot unmap {mapping} in {_spec.Name}: {mapping.Value.Buffer} is exported; revoke or release the export first")
            : null;
        if (!_map.TryUnmap(iova, length, out var bytes, out var removed, out var error, exported.IsEmpty ? null : Veto))
        {
            _spec.ContextActor.Tell(new ContextProtocol.UnmapDone([], 0, error, replyTo, destroy));
            return;
        }
        var pending = new PendingUnmap([.. removed.Select(r => r.Value.Buffer.Handle)], bytes, replyTo, destroy);
        if (removed.IsEmpty)
        {
            Complete(pending);
            return;
        }
        // The device knows what runs: it stops the users of these mappings and answers once none of them runs.
        var unmap = ++_nextUnmap;
        _unmapping[unmap] = pending;
        var ranges = string.Join(", ", removed.Select(r => r.ToString()));
        _spec.DeviceActor.Tell(new Device.AbortUsers(Self, unmap, [.. removed.Select(r => r.Value.Serial)], new FabricError(ErrorCode.EFAULT,
            $"I/O page fault: {ranges} of {_spec.Name} was unmapped while the submission used it")));
    }

    private void Complete(PendingUnmap pending)
    {
        _spec.ContextActor.Tell(new ContextProtocol.UnmapDone(pending.Removed, pending.Bytes, null, pending.ReplyTo, pending.Destroy));
        if (pending.Destroy) Context.Stop(Self);
    }

    /// <summary>Resolves a host access through an IOVA and pins its block; null when refused (already answered).</summary>
    private (MemoryBlock Block, nint Pointer)? PinIova(ulong iova, ulong length, Access needed, IActorRef replyTo)
    {
        if (!_map.TryResolve(iova, length, needed, out var mapping, out var offset, out var error))
        {
            replyTo.Tell(error!);
            return null;
        }
        var buffer = mapping!.Value.Buffer;
        if (buffer.Block is not { } block)
        {
            replyTo.Tell(buffer.Unreachable is { } why
                ? new FabricError(ErrorCode.EPERM, $"IOVA 0x{iova:x} of {_spec.Name} maps {buffer}: {why}")
                : FabricError.Invalid($"IOVA 0x{iova:x} of {_spec.Name} maps {buffer}, memory of another node: read or write it through its handle"));
            return null;
        }
        if (buffer.Revocation.Error is { } revoked || !block.TryAcquire())
        {
            replyTo.Tell(new FabricError(ErrorCode.EIO, $"IOVA 0x{iova:x} of {_spec.Name} maps {buffer}, which can no longer be used: " +
                                                         (buffer.Revocation.Error?.Message ?? "its memory is gone")));
            return null;
        }
        return (block, (nint)(block.Pointer + mapping.Value.Offset + (long)offset));
    }

    private void OnRead(AddressSpace.ReadIova m)
    {
        if (m.Length <= 0)
        {
            m.ReplyTo.Tell(FabricError.Invalid($"cannot read {m.Length} bytes at IOVA 0x{m.Iova:x} of {_spec.Name}"));
            return;
        }
        if (PinIova(m.Iova, (ulong)m.Length, Access.Read, m.ReplyTo) is not { } pinned) return;
        byte[] data;
        try { data = new ReadOnlySpan<byte>((byte*)pinned.Pointer, m.Length).ToArray(); }
        finally { pinned.Block.Release(); }
        m.ReplyTo.Tell(new BufferData(data));
    }

    private void OnWrite(AddressSpace.WriteIova m)
    {
        if (m.Data.Length == 0)
        {
            m.ReplyTo.Tell(FabricError.Invalid($"cannot write 0 bytes at IOVA 0x{m.Iova:x} of {_spec.Name}"));
            return;
        }
        if (PinIova(m.Iova, (ulong)m.Data.Length, Access.Write, m.ReplyTo) is not { } pinned) return;
        try { m.Data.AsSpan().CopyTo(new Span<byte>((byte*)pinned.Pointer, m.Data.Length)); }
        finally { pinned.Block.Release(); }
        m.ReplyTo.Tell(new Ack());
    }

    /// <summary>
    /// Translates every operand of the program before anything runs: an unmapped range or one running past its
    /// mapping is an I/O page fault (EFAULT), a missing permission or an unreachable import EPERM, a revoked import
    /// EIO. Then pins each buffer once, records the use of its mappings and queues the submission on the device.
    /// </summary>
    private void OnResolve(AddressSpace.Resolve m)
    {
        var prepared = ImmutableArray.CreateBuilder<PreparedSubmission>(m.Submissions.Length);
        foreach (var submit in m.Submissions)
        {
            var reply = SubmitReply.For(submit, m.Sender);
            if (ContextChecks.Submit(submit, _spec.Name, _spec.Device, _spec.Profile, out var program) is { } refused) reply.Rejected(refused);
            else if (Prepare(program!, submit, reply) is { } ready) prepared.Add(ready);
        }
        if (prepared.Count > 0) _spec.DeviceActor.Tell(new Device.Enqueue(prepared.DrainToImmutable()));
    }

    private PreparedSubmission? Prepare(Commands.DecodedProgram program, Submit submit, SubmitReply reply)
    {
        var segments = new List<ResolvedMemory.Segment>();
        var buffers = new List<BufferView>();
        var remotes = new List<BufferView>();
        var serials = new List<long>();
        var remoteOperands = new HashSet<int>();
        foreach (var command in program.Commands)
        foreach (var operand in command.Operands)
        {
            if (!_map.TryResolve(operand.Iova, operand.Length, operand.Access, out var mapping, out _, out var error))
            {
                var code = error!.Code == ErrorCode.ENOENT ? ErrorCode.EFAULT : error.Code;
                var what = error.Code == ErrorCode.ENOENT ? "I/O page fault" : "permission fault";
                return Rejected(reply, new FabricError(code,
                    $"{what}: {command.Location}: operand {operand.Name} [0x{operand.Iova:x}, +0x{operand.Length:x}) needs {operand.Access}: {error.Message}"));
            }
            var buffer = mapping!.Value.Buffer;
            serials.Add(mapping.Value.Serial);
            if (buffer.Unreachable is { } why)
                return Rejected(reply, new FabricError(ErrorCode.EPERM, $"{command.Location}: operand {operand.Name} uses {buffer}: {why}"));
            if (buffer.Revocation.Error is { } revoked)
                return Rejected(reply, new FabricError(ErrorCode.EIO, $"{command.Location}: operand {operand.Name} uses {buffer}: {revoked.Message}"));
            if (buffer.Remote is { } remote)
            {
                if (ContextChecks.RemoteRefusal(command, operand, buffer, bothSides: !remoteOperands.Add(command.Index)) is { } refusal) return Rejected(reply, refusal);
                segments.Add(new ResolvedMemory.Segment(mapping.Iova, mapping.Length, 0, remote, mapping.Value.Offset));
                if (!remotes.Contains(buffer)) remotes.Add(buffer);
                continue;
            }
            segments.Add(new ResolvedMemory.Segment(mapping.Iova, mapping.Length, (nint)(buffer.LocalBlock.Pointer + mapping.Value.Offset)));
            if (!buffers.Contains(buffer)) buffers.Add(buffer);
        }

        var pinned = new List<BufferView>(buffers.Count);
        foreach (var buffer in buffers)
        {
            if (buffer.LocalBlock.TryAcquire())
            {
                pinned.Add(buffer);
                continue;
            }
            foreach (var p in pinned) p.LocalBlock.Release();
            return Rejected(reply, new FabricError(ErrorCode.EIO, $"{buffer} mapped in {_spec.Name} can no longer be used: its memory is gone"));
        }
        return new PreparedSubmission(_spec.Context, _spec.ContextActor, Self, [.. serials], submit.Queue, program,
            new ResolvedMemory(segments), [.. pinned], [.. remotes], submit.InFences.IsDefault ? [] : submit.InFences, submit.OutFences, reply);
    }

    private static PreparedSubmission? Rejected(SubmitReply reply, FabricError error)
    {
        reply.Rejected(error);
        return null;
    }

    /// <summary>Closing the context tears the map down without errors, exports or not; running users keep their pins.</summary>
    protected override void PostStop()
    {
        if (_map.Count > 0) _map.TryUnmap(0, ulong.MaxValue, out _, out _, out _, veto: null);
    }
}
