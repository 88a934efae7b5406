using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.Internal.Execution;
using Commands = Fabric.Devices.Internal.Commands;
using Fabric.Devices.Internal.Memory;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices;

/// <summary>The actor behind <see cref="AddressSpace"/>: the only owner of its IOVA map.</summary>
internal sealed unsafe class AddressSpaceActor : ReceiveActor
{
    private readonly AddressSpace.Spec _spec;
    private readonly IovaMap<MappedRange> _map;

    /// <summary>What an IOVA range maps to: a buffer and the offset in it where the range starts.</summary>
    internal sealed record MappedRange(DeviceBuffer Buffer, long Offset);

    public AddressSpaceActor(AddressSpace.Spec spec)
    {
        _spec = spec;
        _map = new IovaMap<MappedRange>(spec.Name, spec.PageSize);

        Receive<AddressSpace.MapBuffer>(OnMap);
        Receive<AddressSpace.Unmap>(OnUnmap);
        Receive<AddressSpace.ReadIova>(OnRead);
        Receive<AddressSpace.WriteIova>(OnWrite);
        Receive<AddressSpace.Resolve>(OnResolve);
        Receive<AddressSpace.Destroy>(m =>
        {
            UnmapAll();
            m.ReplyTo.Tell(new Ack());
            Context.Stop(Self);
        });
    }

    private void OnMap(AddressSpace.MapBuffer m)
    {
        if (_map.TryMap(m.Iova, (ulong)m.Length, m.Access, new MappedRange(m.Buffer, m.Offset), out var iova, out var error))
        {
            m.ReplyTo.Tell(new Mapped(iova));
            return;
        }
        m.Buffer.RemoveMapping();
        m.ReplyTo.Tell(error!);
    }

    private void OnUnmap(AddressSpace.Unmap m)
    {
        if (!_map.TryUnmap(m.Iova, m.Length, out var bytes, out var removed, out var error, ExportedVeto))
        {
            m.ReplyTo.Tell(error!);
            return;
        }
        foreach (var mapping in removed) mapping.Value.Buffer.RemoveMapping();
        m.ReplyTo.Tell(new Unmapped(bytes));
    }

    private FabricError? ExportedVeto(IovaMapping<MappedRange> mapping) =>
        mapping.Value.Buffer.Exports > 0
            ? FabricError.Invalid($"cannot unmap [0x{mapping.Iova:x}, 0x{mapping.Iova + mapping.Length:x}) in {_spec.Name}: " +
                                  $"{mapping.Value.Buffer} is exported; revoke or release the export first")
            : null;

    /// <summary>Resolves a host access through an IOVA and pins its block; null when refused (already answered).</summary>
    private (DeviceBuffer Buffer, nint Pointer)? PinIova(ulong iova, ulong length, Access needed, IActorRef replyTo)
    {
        if (!_map.TryResolve(iova, length, needed, out var mapping, out var offset, out var error))
        {
            replyTo.Tell(error!);
            return null;
        }
        var buffer = mapping!.Value.Buffer;
        if (buffer.Remote is not null)
        {
            replyTo.Tell(FabricError.Invalid($"IOVA 0x{iova:x} of {_spec.Name} maps {buffer}, memory of another node: read or write it through its handle"));
            return null;
        }
        if (buffer.RevokedError is { } revoked || !buffer.Block.TryAcquire())
        {
            replyTo.Tell(new FabricError(ErrorCode.EIO, $"IOVA 0x{iova:x} of {_spec.Name} maps {buffer}, which can no longer be used: " +
                                                         (buffer.RevokedError?.Message ?? "its memory is gone")));
            return null;
        }
        return (buffer, (nint)(buffer.Block.Pointer + mapping.Value.Offset + (long)offset));
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
        finally { pinned.Buffer.Block.Release(); }
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
        finally { pinned.Buffer.Block.Release(); }
        m.ReplyTo.Tell(new Ack());
    }

    /// <summary>
    /// Translates every operand of the program before anything runs: an unmapped range or one running past its
    /// mapping is an I/O page fault (EFAULT), a missing permission EPERM, a revoked import EIO. Then pins each buffer
    /// once and queues the submission on the device.
    /// </summary>
    private void OnResolve(AddressSpace.Resolve m)
    {
        var prepared = ImmutableArray.CreateBuilder<PreparedSubmission>(m.Submissions.Length);
        foreach (var submission in m.Submissions)
            if (Prepare(submission) is { } ready) prepared.Add(ready);
        if (prepared.Count > 0) _spec.DeviceActor.Tell(new Device.Enqueue(prepared.DrainToImmutable()));
    }

    private PreparedSubmission? Prepare(AddressSpace.Resolvable m)
    {
        var segments = new List<ResolvedMemory.Segment>();
        var buffers = new List<DeviceBuffer>();
        var remotes = new List<DeviceBuffer>();
        var remoteOperands = new HashSet<int>();
        foreach (var command in m.Program.Commands)
        foreach (var operand in command.Operands)
        {
            if (!_map.TryResolve(operand.Iova, operand.Length, operand.Access, out var mapping, out _, out var error))
            {
                var code = error!.Code == ErrorCode.ENOENT ? ErrorCode.EFAULT : error.Code;
                var what = error.Code == ErrorCode.ENOENT ? "I/O page fault" : "permission fault";
                m.Reply.Rejected(new FabricError(code,
                    $"{what}: {command.Location}: operand {operand.Name} [0x{operand.Iova:x}, +0x{operand.Length:x}) " +
                    $"needs {operand.Access}: {error.Message}"));
                return null;
            }
            var buffer = mapping!.Value.Buffer;
            if (buffer.RevokedError is { } revoked)
            {
                m.Reply.Rejected(new FabricError(ErrorCode.EIO,
                    $"{command.Location}: operand {operand.Name} uses {buffer}: {revoked.Message}"));
                return null;
            }
            if (buffer.Remote is { } remote)
            {
                if (RemoteRefusal(command, operand, buffer, bothSides: !remoteOperands.Add(command.Index)) is { } refusal)
                {
                    m.Reply.Rejected(refusal);
                    return null;
                }
                segments.Add(new ResolvedMemory.Segment(mapping.Iova, mapping.Length, 0, remote, mapping.Value.Offset));
                if (!remotes.Contains(buffer)) remotes.Add(buffer);
                continue;
            }
            segments.Add(new ResolvedMemory.Segment(mapping.Iova, mapping.Length, (nint)(buffer.Block.Pointer + mapping.Value.Offset)));
            if (!buffers.Contains(buffer)) buffers.Add(buffer);
        }

        var pinned = new List<DeviceBuffer>(buffers.Count);
        foreach (var buffer in buffers)
        {
            if (buffer.Block.TryAcquire())
            {
                pinned.Add(buffer);
                continue;
            }
            foreach (var p in pinned) p.Block.Release();
            m.Reply.Rejected(new FabricError(ErrorCode.EIO, $"{buffer} mapped in {_spec.Name} can no longer be used: its memory is gone"));
            return null;
        }
        return new PreparedSubmission(_spec.Context, _spec.ContextActor, m.Queue, m.Program,
            new ResolvedMemory(segments), [.. pinned], [.. remotes], m.InFences, m.OutFences, m.Reply);
    }

    /// <summary>
    /// Another node's memory is reached by DMA: only a COPY may touch it, and only one side of it (the other side
    /// is this node's memory). Compute commands work on local memory: copy the data in first.
    /// </summary>
    private static FabricError? RemoteRefusal(Commands.DecodedCommand command, Commands.MemoryOperand operand, DeviceBuffer buffer, bool bothSides)
    {
        if (bothSides)
            return FabricError.Invalid($"{command.Location}: both sides are memory of other nodes; one side of a COPY must be this device's memory");
        if (command is not Commands.CopyCommand)
            return FabricError.Invalid($"{command.Location}: operand {operand.Name} is {buffer}, memory of another node, which only COPY " +
                                       "can reach; copy it into this device's memory first");
        return null;
    }

    private void UnmapAll()
    {
        if (_map.Count == 0) return;
        if (_map.TryUnmap(0, ulong.MaxValue, out _, out var removed, out _, veto: null))
            foreach (var mapping in removed) mapping.Value.Buffer.RemoveMapping();
    }

    /// <summary>Closing the context (or destroying the space) tears the map down without errors, exports or not.</summary>
    protected override void PostStop() => UnmapAll();
}
