using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core.Protocol;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Core.Client;

/// <summary>
/// An open device (a context): device memory, address spaces, submissions and dma-buf exports and imports.
/// Disposing it closes the context, which releases everything it holds.
/// </summary>
public sealed class DeviceContext : IAsyncDisposable
{
    private readonly FabricClient _client;
    private readonly IActorRef _actor;
    private int _closed;
    private volatile FabricError? _gone;
    private readonly TaskCompletionSource<FabricError> _goneSignal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal DeviceContext(FabricClient client, DeviceRequests.DeviceOpened opened)
    {
        _client = client;
        _actor = opened.Context;
        Device = opened.Device;
        Id = opened.Id;
        InfoAtOpen = opened.Info;
    }

    public DeviceId Device { get; }
    public ContextId Id { get; }

    /// <summary>The context actor on the node (tests watch it).</summary>
    internal IActorRef Actor => _actor;

    /// <summary>The device's info when this context opened it (profile: memory, queues, page size, group).</summary>
    public DeviceInfo InfoAtOpen { get; }

    public override string ToString() => $"{Device}/{Id}";

    /// <summary>False once closed, or once its node closed it or was lost.</summary>
    public bool IsUsable => _closed == 0 && _gone is null;

    /// <summary>Allocates zeroed device memory (whole pages); alignment 0 means the device's page size.</summary>
    public async Task<BufferHandle> AllocateAsync(long size, long alignment = 0, AllocationFlags flags = AllocationFlags.None,
        CancellationToken cancel = default) =>
        (await Ask<BufferAllocated>(new Allocate(size, alignment, flags), $"allocate {size} bytes", cancel)).Handle;

    public Task FreeAsync(BufferHandle handle, CancellationToken cancel = default) =>
        Ask<Ack>(new Free(handle), $"free {handle}", cancel);

    /// <summary>Copies host bytes into a buffer, in chunks of <see cref="FabricClientOptions.TransferChunkBytes"/>.</summary>
    public async Task WriteAsync(BufferHandle handle, long offset, ReadOnlyMemory<byte> data, CancellationToken cancel = default)
    {
        var chunk = _client.Options.TransferChunkBytes;
        if (data.Length <= chunk)
        {
            await Ask<Ack>(new WriteBuffer(handle, offset, data.ToArray()), $"write {data.Length} bytes to {handle}", cancel);
            return;
        }
        var writes = new List<Task>();
        for (var at = 0; at < data.Length; at += chunk)
        {
            var part = data.Slice(at, Math.Min(chunk, data.Length - at)).ToArray();
            writes.Add(Ask<Ack>(new WriteBuffer(handle, offset + at, part), $"write {part.Length} bytes to {handle} at {offset + at}", cancel));
        }
        await Task.WhenAll(writes);
    }

    /// <summary>Copies bytes of a buffer back to the host.</summary>
    public async Task<byte[]> ReadAsync(BufferHandle handle, long offset, int length, CancellationToken cancel = default)
    {
        var chunk = _client.Options.TransferChunkBytes;
        if (length <= chunk)
            return (await Ask<BufferData>(new ReadBuffer(handle, offset, length), $"read {length} bytes of {handle}", cancel)).Data;
        var result = new byte[length];
        var reads = new List<Task>();
        for (var at = 0; at < length; at += chunk)
            reads.Add(ReadChunkAsync(at, Math.Min(chunk, length - at)));
        await Task.WhenAll(reads);
        return result;

        async Task ReadChunkAsync(int start, int size)
        {
            var part = await Ask<BufferData>(new ReadBuffer(handle, offset + start, size), $"read {size} bytes of {handle} at {offset + start}", cancel);
            part.Data.CopyTo(result, start);
        }
    }

    public async Task<AddressSpaceId> CreateAddressSpaceAsync(CancellationToken cancel = default) =>
        (await Ask<AddressSpaceCreated>(new CreateAddressSpace(), "create an address space", cancel)).Id;

    public Task DestroyAddressSpaceAsync(AddressSpaceId space, CancellationToken cancel = default) =>
        Ask<Ack>(new DestroyAddressSpace(space), $"destroy {space}", cancel);

    /// <summary>Attaches this context's device to the address space its submissions will use.</summary>
    public Task AttachAsync(AddressSpaceId space, CancellationToken cancel = default) =>
        Ask<Ack>(new AttachDevice(space), $"attach {Device} to {space}", cancel);

    public Task DetachAsync(AddressSpaceId space, CancellationToken cancel = default) =>
        Ask<Ack>(new DetachDevice(space), $"detach {Device} from {space}", cancel);

    /// <summary>
    /// Maps a buffer (from <paramref name="offset"/>, <paramref name="length"/> bytes, the rest of it when null) at
    /// <paramref name="iova"/>, or where the address space chooses when null. Returns the IOVA.
    /// </summary>
    public async Task<Iova> MapAsync(AddressSpaceId space, BufferHandle handle, Access access, Iova? iova = null,
        long offset = 0, long length = -1, CancellationToken cancel = default) =>
        (await Ask<Mapped>(new Map(space, handle, offset, length, access, iova), $"map {handle} in {space}", cancel)).Iova;

    /// <summary>Unmaps the whole mappings in a range; returns the bytes unmapped.</summary>
    public async Task<ulong> UnmapAsync(AddressSpaceId space, Iova iova, ulong length, CancellationToken cancel = default) =>
        (await Ask<Unmapped>(new Unmap(space, iova, length), $"unmap [{iova}, +0x{length:x}) in {space}", cancel)).Bytes;

    /// <summary>
    /// Maps the client's own host memory for the device (habanalabs userptr; iommufd maps user memory the same way)
    /// at <paramref name="iova"/>, or where the address space chooses. Its length must be a multiple of the device's
    /// page size. When the device's node runs in this process the device reads and writes the memory itself; on any
    /// other node it works on a copy (see <see cref="HostMapping"/>). The memory must stay valid until the mapping is
    /// unmapped.
    /// </summary>
    public async Task<HostMapping> MapHostMemoryAsync(AddressSpaceId space, Memory<byte> memory, Access access, Iova? iova = null,
        CancellationToken cancel = default)
    {
        var pin = HostMemoryPins.Register(memory);
        HostMemoryPinned pinned;
        try { pinned = await Ask<HostMemoryPinned>(new PinHostMemory(memory.Length, access, pin.Token), $"pin {memory.Length} bytes of host memory", cancel); }
        finally { HostMemoryPins.TryWithdraw(pin); } // unpinned unless the node claimed it
        var mapping = new HostMapping(this, space, pinned.Handle, memory, access, pinned.ZeroCopy ? pin : null);
        try
        {
            await mapping.SyncToDeviceAsync(cancel);
            mapping.Iova = await MapAsync(space, pinned.Handle, access, iova, cancel: cancel);
            return mapping;
        }
        catch
        {
            await mapping.ReleaseAsync();
            throw;
        }
    }

    /// <summary>The IOVA ranges the address space can map now, and the alignment maps need (iommufd IOAS_IOVA_RANGES).</summary>
    public Task<IovaRanges> GetIovaRangesAsync(AddressSpaceId space, CancellationToken cancel = default) =>
        Ask<IovaRanges>(new GetIovaRanges(space), $"read the IOVA ranges of {space}", cancel);

    /// <summary>Sets the ranges automatic IOVAs come from (IOAS_ALLOW_IOVAS); an empty list clears it.</summary>
    public Task AllowIovasAsync(AddressSpaceId space, IEnumerable<IovaRange> ranges, CancellationToken cancel = default) =>
        Ask<Ack>(new AllowIovas(space, [.. ranges]), $"allow IOVAs in {space}", cancel);

    /// <summary>Reserves a hole in the address space that no map may touch.</summary>
    public Task ReserveIovasAsync(AddressSpaceId space, IovaRange range, CancellationToken cancel = default) =>
        Ask<Ack>(new ReserveIovas(space, range), $"reserve {range} in {space}", cancel);

    /// <summary>
    /// Maps the memory behind a mapped range again, in <paramref name="target"/> (IOAS_COPY: the same memory, no bytes
    /// copied), at <paramref name="targetIova"/> or where the target chooses. Returns the target IOVA.
    /// </summary>
    public async Task<Iova> CopyMappingAsync(AddressSpaceId source, Iova sourceIova, ulong length, AddressSpaceId target, Access access,
        Iova? targetIova = null, CancellationToken cancel = default) =>
        (await Ask<Mapped>(new CopyMapping(source, sourceIova, length, target, targetIova, access),
            $"copy [{sourceIova}, +0x{length:x}) of {source} to {target}", cancel)).Iova;

    public async Task<byte[]> ReadIovaAsync(AddressSpaceId space, Iova iova, int length, CancellationToken cancel = default) =>
        (await Ask<BufferData>(new ReadIova(space, iova, length), $"read {length} bytes at IOVA {iova} of {space}", cancel)).Data;

    public Task WriteIovaAsync(AddressSpaceId space, Iova iova, ReadOnlyMemory<byte> data, CancellationToken cancel = default) =>
        Ask<Ack>(new WriteIova(space, iova, data.ToArray()), $"write {data.Length} bytes at IOVA {iova} of {space}", cancel);

    /// <summary>
    /// Submits a command buffer (see <see cref="Commands.CommandBufferBuilder"/>); returns at once with its fence and
    /// <paramref name="outFences"/> new fences for its SIGNAL_FENCE slots.
    /// </summary>
    public async Task<Submitted> SubmitAsync(byte[] commands, int queue = 0, IEnumerable<FenceId>? inFences = null, int outFences = 0,
        CancellationToken cancel = default)
    {
        var what = $"submit to queue {queue} of {Device}";
        ThrowIfUnusable(what);
        ImmutableArray<FenceId> waits = inFences is null ? [] : [.. inFences];
        return await _client.SubmitAsync(_actor, tag => new Submit(queue, commands, waits, outFences, _client.Session, tag), what, cancel);
    }

    /// <summary>Waits for a fence (of any device).</summary>
    public Task<FenceStatus> WaitAsync(FenceId fence, TimeSpan timeout, CancellationToken cancel = default) =>
        _client.WaitAsync(fence, timeout, cancel);

    /// <summary>Submits, waits, and throws the fence's error if it failed or did not signal in time.</summary>
    public async Task<FenceId> RunAsync(byte[] commands, TimeSpan timeout, int queue = 0, CancellationToken cancel = default)
    {
        var submitted = await SubmitAsync(commands, queue, cancel: cancel);
        var status = await WaitAsync(submitted.Fence, timeout, cancel);
        return status.State switch
        {
            FenceState.Completed or FenceState.Gone => submitted.Fence,
            FenceState.Failed => throw new FabricException(status.Error!),
            _ => throw new FabricException(new FabricError(ErrorCode.ETIMEDOUT,
                $"{submitted.Fence} did not signal within {timeout.TotalSeconds:0.###} s")),
        };
    }

    /// <summary>
    /// Runs tasks on the device itself, side by side, in one message each way (see <see cref="TaskRequests"/>): each
    /// program addresses its operands with <see cref="Commands.TaskOperands.Address"/>; the device maps them, makes the
    /// outputs, submits and waits. Returns each task's outcome in order (a failed task has an error and made nothing).
    /// <paramref name="release"/> buffers (made or named by tasks) are unmapped and freed first, and the imports of
    /// <paramref name="forget"/> let go.
    /// </summary>
    public async Task<ImmutableArray<TaskRequests.TaskOutcome>> RunTasksAsync(IReadOnlyList<TaskRequests.TaskRequest> tasks, TimeSpan timeout,
        IEnumerable<BufferHandle>? release = null, IEnumerable<ExportId>? forget = null, bool forgetAllImports = false, CancellationToken cancel = default)
    {
        var request = new TaskRequests.RunTasks([.. tasks], (long)Math.Ceiling(timeout.TotalMilliseconds), release is null ? [] : [.. release],
            forget is null ? [] : [.. forget], forgetAllImports);
        // One reply once all have ended: it may wait for the slowest task (and its imports) besides the usual answer time.
        var ran = await Ask<TaskRequests.TasksRan>(request, $"run {tasks.Count} tasks on {Device}", cancel, waitsFor: timeout * 2);
        return ran.Outcomes;
    }

    /// <summary>
    /// Reads the first <c>Length</c> bytes of each buffer, many per message (up to <see cref="FabricClientOptions.TransferChunkBytes"/>
    /// of data each, sent side by side); in order.
    /// </summary>
    public async Task<byte[][]> ReadBuffersAsync(IReadOnlyList<(BufferHandle Handle, int Length)> buffers, CancellationToken cancel = default)
    {
        var chunk = _client.Options.TransferChunkBytes;
        var groups = new List<(int Start, int Count)>();
        for (int start = 0, at = 0, bytes = 0; at <= buffers.Count; at++)
        {
            if (at == buffers.Count || (at > start && bytes + buffers[at].Length > chunk))
            {
                if (at > start) groups.Add((start, at - start));
                (start, bytes) = (at, 0);
            }
            if (at < buffers.Count) bytes += buffers[at].Length;
        }
        var reads = groups.Select(g => Ask<TaskRequests.BuffersRead>(
            new TaskRequests.ReadBuffers([.. buffers.Skip(g.Start).Take(g.Count).Select(b => b.Handle)], [.. buffers.Skip(g.Start).Take(g.Count).Select(b => b.Length)]),
            $"read {g.Count} buffers of {this}", cancel)).ToArray();
        return [.. (await Task.WhenAll(reads)).SelectMany(r => r.Data)];
    }

    /// <summary>
    /// Creates a fence this context owns (a sync_file / drm_syncobj fence): it signals when <see cref="SignalFenceAsync"/>
    /// says so, or with EIO when this context goes. <paramref name="signalled"/>: a stub already signalled. With a
    /// <paramref name="timeline"/>, it is point <paramref name="point"/> of that timeline and signals only after the
    /// earlier points have. Submissions wait on it like on any fence.
    /// </summary>
    public async Task<FenceId> CreateFenceAsync(bool signalled = false, FabricError? error = null, long timeline = 0, long point = 0,
        CancellationToken cancel = default) =>
        (await Ask<FenceCreated>(new CreateFence(signalled, error, timeline, point), "create a fence", cancel)).Fence;

    /// <summary>Signals a fence this context created, ok or with <paramref name="error"/>.</summary>
    public Task SignalFenceAsync(FenceId fence, FabricError? error = null, CancellationToken cancel = default) =>
        Ask<Ack>(new SignalFence(fence, error), $"signal {fence}", cancel);

    /// <summary>A new fence that signals once all of <paramref name="fences"/> have (sync_file merge), with the first error among them.</summary>
    public async Task<FenceId> MergeFencesAsync(IEnumerable<FenceId> fences, CancellationToken cancel = default) =>
        (await Ask<FenceCreated>(new MergeFences([.. fences]), "merge fences", cancel)).Fence;

    /// <summary>Exports a buffer as a dma-buf; the token lets another context import it.</summary>
    public Task<Exported> ExportAsync(BufferHandle handle, Access access = Access.ReadWrite, CancellationToken cancel = default) =>
        Ask<Exported>(new Export(handle, access), $"export {handle}", cancel);

    /// <summary>Imports an export: a new handle in this context onto the same memory.</summary>
    /// <remarks>
    /// The import is attached by the exporter's device manager: if the exporter's node is lost (as this client learns
    /// it) the request fails at once with ENODEV, instead of waiting out its timeout for an answer nobody will send.
    /// </remarks>
    public Task<Imported> ImportAsync(ExportToken token, CancellationToken cancel = default) =>
        Ask<Imported>(new Import(token), $"import {token}", cancel, alsoLost: _client.LostNode(token.Export.Device.Node));

    /// <summary>Revokes an export this context made; returns how many importers were told.</summary>
    public async Task<int> RevokeAsync(ExportId export, CancellationToken cancel = default) =>
        (await Ask<Revoked>(new Revoke(export), $"revoke {export}", cancel)).Importers;

    public Task<ContextInfo> GetInfoAsync(CancellationToken cancel = default) =>
        Ask<ContextInfo>(new GetContextInfo(), $"read info of {this}", cancel);

    /// <summary>Closes the context: every buffer, mapping and address space is released, every export dropped.</summary>
    public async Task CloseAsync(CancellationToken cancel = default)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _client.Forget(this);
        if (_gone is not null) return; // nothing left to close
        await Ask<Closed>(new Close(), $"close {this}", cancel);
    }

    public async ValueTask DisposeAsync()
    {
        try { await CloseAsync(); }
        catch (FabricException e) when (e.Code is ErrorCode.ENODEV or ErrorCode.ETIMEDOUT)
        {
            // The context is already gone with its device or node: there is nothing left to release.
        }
    }

    /// <summary>Asks the context; a request still pending when the context fails or is lost fails at once with that error.</summary>
    private Task<T> Ask<T>(IFabricMessage request, string what, CancellationToken cancel, Task<FabricError>? alsoLost = null, TimeSpan? waitsFor = null)
    {
        if (request is not Close) ThrowIfUnusable(what);
        var gone = alsoLost is null ? _goneSignal.Task : Task.WhenAny(_goneSignal.Task, alsoLost).Unwrap();
        return _client.RequestAsync<T>(_actor, request, what, cancel, waitsFor, lostAlso: gone);
    }

    /// <summary>The context's error once it failed, was torn down or its node was lost; null while it is usable.</summary>
    internal FabricError? GoneError => _gone;

    private void ThrowIfUnusable(string what)
    {
        if (_gone is { } gone) throw new FabricException(gone with { Message = $"'{what}': {gone.Message}" });
        if (_closed != 0) throw new FabricException(new FabricError(ErrorCode.ENODEV, $"'{what}': context {this} is closed"));
    }

    /// <summary>The context actor stopped without this client closing it: its node was lost, or the node closed it.</summary>
    internal void MarkGone(bool nodeLost) => MarkGone(new FabricError(ErrorCode.ENODEV, nodeLost
        ? $"context {this} is gone: node {Device.Node} was lost"
        : $"context {this} was closed by its node"));

    /// <summary>
    /// The context is gone with <paramref name="error"/> (the first one told stays): pending and later requests on it
    /// fail with it.
    /// </summary>
    internal void MarkGone(FabricError error)
    {
        if (_closed != 0 || _gone is not null) return;
        _gone = error;
        _goneSignal.TrySetResult(error);
    }
}
