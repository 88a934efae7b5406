using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Commands;
using Fabric.Devices.Internal.State;

namespace Fabric.Devices.Internal.Execution;

/// <summary>
/// A submission that passed decoding and IOVA translation: its program, the translated memory, and one pin (a block
/// reference) on every buffer it touches, so nothing it uses can be freed until it ends. Local to one node.
/// <see cref="Mappings"/> are the serials of the mappings of <see cref="Space"/> it uses: an unmap of them asks the
/// device to abort it, and is answered once it has ended.
/// </summary>
internal sealed class PreparedSubmission(
    ContextId context,
    IActorRef contextActor,
    IActorRef space,
    long[] mappings,
    int queue,
    DecodedProgram program,
    ResolvedMemory memory,
    ImmutableArray<BufferView> pinned,
    ImmutableArray<BufferView> remotes,
    ImmutableArray<FenceId> inFences,
    int outFences,
    SubmitReply reply)
{
    private int _released;

    public ContextId Context { get; } = context;
    public IActorRef ContextActor { get; } = contextActor;
    public IActorRef Space { get; } = space;

    /// <summary>Serials of the mappings it uses (a few; searched linearly), never written after construction.</summary>
    public IReadOnlyList<long> Mappings { get; } = mappings;

    public bool Uses(IActorRef space, IReadOnlySet<long> mappings)
    {
        if (!Space.Equals(space)) return false;
        foreach (var mapping in Mappings)
            if (mappings.Contains(mapping)) return true;
        return false;
    }
    public int Queue { get; } = queue;
    public DecodedProgram Program { get; } = program;
    public ResolvedMemory Memory { get; } = memory;
    public ImmutableArray<BufferView> Pinned { get; } = pinned;

    /// <summary>Imports of other nodes' exports it uses; their bytes move over the data plane when it runs.</summary>
    public ImmutableArray<BufferView> Remotes { get; } = remotes;
    public ImmutableArray<FenceId> InFences { get; } = inFences;
    public int OutFences { get; } = outFences;

    /// <summary>Where its acceptance or rejection, and a tagged submission's fence signal, are told.</summary>
    public SubmitReply Reply { get; } = reply;

    /// <summary>The first revocation among the buffers it uses, if any: using them now is an EIO.</summary>
    public FabricError? Revoked()
    {
        foreach (var buffer in Pinned)
            if (buffer.Revocation.Error is { } error) return error;
        foreach (var buffer in Remotes)
            if (buffer.Revocation.Error is { } error) return error;
        return null;
    }

    /// <summary>Drops the pins; safe to call more than once.</summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        foreach (var buffer in Pinned) buffer.LocalBlock.Release();
    }
}

/// <summary>
/// The IOVA → host pointer view a submission's kernels use: the mappings its operands resolved to, captured at
/// submit time (their blocks are pinned), searched by IOVA.
/// </summary>
internal sealed unsafe class ResolvedMemory : IDeviceMemoryView
{
    private readonly Segment[] _segments;

    public ResolvedMemory(IEnumerable<Segment> segments) =>
        _segments = segments.DistinctBy(s => s.Iova).OrderBy(s => s.Iova).ToArray();

    /// <summary>A mapping the submission uses: local memory at <see cref="Base"/>, or a remote import from <see cref="RemoteOffset"/>.</summary>
    public readonly record struct Segment(ulong Iova, ulong Length, nint Base, RemoteMemory? Remote = null, long RemoteOffset = 0);

    public bool HasRemote => _segments.Any(s => s.Remote is not null);

    /// <summary>The remote import and offset behind an IOVA range, if it is remote.</summary>
    public bool TryRemote(ulong iova, out RemoteMemory remote, out long offset)
    {
        var segment = Find(iova);
        remote = segment.Remote!;
        offset = segment.RemoteOffset + (long)(iova - segment.Iova);
        return segment.Remote is not null;
    }

    private Segment Find(ulong iova)
    {
        int lo = 0, hi = _segments.Length - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var segment = _segments[mid];
            if (iova < segment.Iova) hi = mid - 1;
            else if (iova - segment.Iova >= segment.Length) lo = mid + 1;
            else return segment;
        }
        throw new InvalidOperationException($"IOVA 0x{iova:x} was not resolved for this submission");
    }

    public byte* Translate(ulong iova, ulong length)
    {
        int lo = 0, hi = _segments.Length - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var segment = _segments[mid];
            if (iova < segment.Iova) hi = mid - 1;
            else if (iova - segment.Iova >= segment.Length) lo = mid + 1;
            else
            {
                if (segment.Remote is not null) throw new InvalidOperationException($"IOVA 0x{iova:x} is remote memory");
                if (length > segment.Length - (iova - segment.Iova))
                    throw new InvalidOperationException($"[0x{iova:x}, +0x{length:x}) runs past the mapping at 0x{segment.Iova:x}");
                return (byte*)segment.Base + (iova - segment.Iova);
            }
        }
        throw new InvalidOperationException($"IOVA 0x{iova:x} was not resolved for this submission");
    }
}
