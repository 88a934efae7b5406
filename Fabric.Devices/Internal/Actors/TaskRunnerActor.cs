using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using static Fabric.Core.Protocol.ContextRequests;
using static Fabric.Core.Protocol.TaskRequests;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="TaskRunner"/>. Each task is what a client would do, done here with the context's own
/// requests: its operands mapped (a buffer named before is found mapped; an import found imported), its outputs
/// allocated and mapped, its program relocated to the IOVAs they got, submitted, and its fence awaited. The tasks of
/// one message run side by side as tasks on the thread pool; what they share (the mappings and imports kept for later
/// tasks, the fences awaited) is in concurrent maps, and every change to the context goes through its mailbox.
/// </summary>
internal sealed class TaskRunnerActor : ReceiveActor
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(30);
    private readonly TaskRunner.Spec _spec;
    private readonly IActorRef _context;
    private readonly IActorRef _self;
    // A buffer mapped once (with the access of the first task that named it) serves every later task that names it.
    private readonly ConcurrentDictionary<BufferHandle, Lazy<Task<Mapping>>> _mapped = new();
    // An export imported once (keyed by the whole token: a wrong secret is never served by a right one's import).
    private readonly ConcurrentDictionary<ExportToken, Lazy<Task<Reach>>> _reaches = new();
    private readonly ConcurrentDictionary<long, TaskCompletionSource<FenceStatus>> _fences = new();
    private long _nextTag;
    private AddressSpaceId? _space;

    private sealed record Mapping(BufferHandle Handle, Iova Iova, ulong Length);

    /// <summary>An export made readable here: where tasks read it, and what that took (the import, or the local copy).</summary>
    private sealed record Reach(Iova Iova, long Size, Mapping Held);

    public TaskRunnerActor(TaskRunner.Spec spec)
    {
        _spec = spec;
        _context = Context.Parent;
        _self = Self;
        Receive<TaskRunner.Run>(OnRun);
        Receive<TaskRunner.Read>(OnRead);
        Receive<SubmitAccepted>(Accepted);
        Receive<SubmitOutcomes>(m =>
        {
            foreach (var accepted in m.Accepted) Accepted(accepted);
            foreach (var signalled in m.Signalled) Signal(signalled.Tag, signalled.Status);
        });
        Receive<FenceSignalled>(m => Signal(m.Tag, m.Status));
        Receive<SubmitRejected>(m => { if (_fences.TryRemove(m.Tag, out var fence)) fence.TrySetException(new FabricException(m.Error)); });
    }

    private void OnRun(TaskRunner.Run m)
    {
        if (_space != m.Space)
        {
            // The device was attached elsewhere: what was kept was mapped in the old space (it goes with the context).
            _mapped.Clear();
            _reaches.Clear();
            _space = m.Space;
        }
        var space = m.Space;
        foreach (var handle in m.Request.Release) _ = ReleaseAsync(handle, space);
        var forget = m.Request.Forget.ToHashSet();
        foreach (var (token, reach) in _reaches)
            if ((m.Request.ForgetAllImports || forget.Contains(token.Export)) && _reaches.TryRemove(new(token, reach)))
                _ = DropAsync(reach, space);
        var timeout = TimeSpan.FromMilliseconds(Math.Clamp(m.Request.TimeoutMs, 1, (long)TimeSpan.FromDays(1).TotalMilliseconds));
        var runs = m.Request.Tasks.Select(t => RunAsync(t, space, timeout)).ToArray();
        Task.WhenAll(runs).PipeTo(m.ReplyTo, success: outcomes => new TasksRan([.. outcomes]));
    }

    private void OnRead(TaskRunner.Read m)
    {
        var request = m.Request;
        if (request.Handles.Length != request.Lengths.Length)
        {
            m.ReplyTo.Tell(FabricError.Invalid($"{_spec.Name}: {request.Handles.Length} buffers to read but {request.Lengths.Length} lengths"));
            return;
        }
        var reads = request.Handles.Select((handle, i) => AskAsync<BufferData>(new ReadBuffer(handle, 0, request.Lengths[i]))).ToArray();
        Task.WhenAll(reads).PipeTo(m.ReplyTo, success: data => new BuffersRead([.. data.Select(d => d.Data)]),
            failure: e => (e is AggregateException { InnerException: { } inner } ? inner : e) is FabricException refused ? refused.Error
                : new FabricError(ErrorCode.EIO, $"reading {request.Handles.Length} buffers of {_spec.Name} broke: {e.GetType().Name}"));
    }

    private async Task<TaskOutcome> RunAsync(TaskRequest task, AddressSpaceId space, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var made = new List<(Mapping Mapping, long Size)>();
        try
        {
            if (task.Operands.Length > TaskOperands.MaxOperands)
                throw Refuse($"task {task.Tag} names {task.Operands.Length} operands; at most {TaskOperands.MaxOperands}");
            var iovas = new ulong[task.Operands.Length];
            var sizes = new long[task.Operands.Length];
            for (var i = 0; i < task.Operands.Length; i++)
            {
                var operand = task.Operands[i];
                switch (operand.Kind)
                {
                    case OperandKind.Local:
                        if (operand.Size <= 0) throw Refuse($"task {task.Tag} operand {i}: a local buffer's size must be given, not {operand.Size}");
                        iovas[i] = (await MappedAsync(operand.Handle, operand.Access, operand.Size, space)).Iova.Value;
                        sizes[i] = operand.Size;
                        break;
                    case OperandKind.Import:
                        var reach = await ReachAsync(operand.Token, space, timeout);
                        (iovas[i], sizes[i]) = (reach.Iova.Value, reach.Size);
                        break;
                    case OperandKind.Data or OperandKind.Output:
                        var size = operand.Kind == OperandKind.Data ? operand.Data?.Length ?? 0 : operand.Size;
                        var mapping = await MakeAsync(size, operand.Kind == OperandKind.Data ? operand.Data : null, space);
                        made.Add((mapping, size));
                        (iovas[i], sizes[i]) = (mapping.Iova.Value, size);
                        break;
                    default:
                        throw Refuse($"task {task.Tag} operand {i} is of the unknown kind {(int)operand.Kind}");
                }
            }
            if (!TaskOperands.TryRelocate(task.Program, iovas, sizes, out var program, out var refused))
                throw new FabricException(refused! with { Message = $"task {task.Tag} on {_spec.Name}: {refused.Message}" });
            await SubmitAsync(program, task.Queue, timeout);
            foreach (var (mapping, _) in made) _mapped[mapping.Handle] = new Lazy<Task<Mapping>>(Task.FromResult(mapping));
            return new TaskOutcome(task.Tag, null, [.. made.Select(m => new MadeBuffer(m.Mapping.Handle, m.Size))], clock.ElapsedTicks * 1_000_000 / Stopwatch.Frequency);
        }
        catch (Exception e)
        {
            foreach (var (mapping, _) in made) _ = UnmapAndFreeAsync(mapping, space);
            var error = e is FabricException refused ? refused.Error
                : new FabricError(ErrorCode.EIO, $"task {task.Tag} on {_spec.Name} broke: {e.GetType().Name}: {e.Message}");
            return new TaskOutcome(task.Tag, error, [], clock.ElapsedTicks * 1_000_000 / Stopwatch.Frequency);
        }
    }

    private FabricException Refuse(string message) => new(FabricError.Invalid($"{_spec.Name}: {message}"));

    private Task<Mapping> MappedAsync(BufferHandle handle, Access access, long size, AddressSpaceId space)
    {
        var lazy = _mapped.GetOrAdd(handle, h => new Lazy<Task<Mapping>>(() => MapAsync(h, access, size, space)));
        return Forgotten(_mapped, handle, lazy);
    }

    private Task<Reach> ReachAsync(ExportToken token, AddressSpaceId space, TimeSpan timeout)
    {
        var lazy = _reaches.GetOrAdd(token, t => new Lazy<Task<Reach>>(() => ImportAsync(t, space, timeout)));
        return Forgotten(_reaches, token, lazy);
    }

    /// <summary>A kept result that failed is forgotten, so the next task that needs it tries again.</summary>
    private static async Task<T> Forgotten<TKey, T>(ConcurrentDictionary<TKey, Lazy<Task<T>>> kept, TKey key, Lazy<Task<T>> lazy) where TKey : notnull
    {
        try { return await lazy.Value; }
        catch (FabricException)
        {
            kept.TryRemove(new(key, lazy));
            throw;
        }
    }

    private async Task<Mapping> MapAsync(BufferHandle handle, Access access, long size, AddressSpaceId space)
    {
        var mapped = await AskAsync<Mapped>(new Map(space, handle, 0, -1, access, null));
        return new Mapping(handle, mapped.Iova, (ulong)((size + _spec.PageSize - 1) / _spec.PageSize * _spec.PageSize));
    }

    /// <summary>New device memory for an output (zeroed) or a Data operand (written), mapped read-write.</summary>
    private async Task<Mapping> MakeAsync(long size, byte[]? data, AddressSpaceId space)
    {
        var allocated = await AskAsync<BufferAllocated>(new Allocate(size, 0, AllocationFlags.None));
        try
        {
            if (data is { Length: > 0 }) await AskAsync<Ack>(new WriteBuffer(allocated.Handle, 0, data));
            return await MapAsync(allocated.Handle, Access.ReadWrite, allocated.Size, space);
        }
        catch (FabricException)
        {
            _ = AskAsync<Ack>(new Free(allocated.Handle));
            throw;
        }
    }

    /// <summary>
    /// Imports the export and maps it; from another node its bytes are then copied once into this device's memory (one
    /// transfer over the data plane), the import let go, and tasks read the copy.
    /// </summary>
    private async Task<Reach> ImportAsync(ExportToken token, AddressSpaceId space, TimeSpan timeout)
    {
        var imported = await AskAsync<Imported>(new Import(token));
        Mapping import;
        try { import = await MapAsync(imported.Handle, Access.Read, imported.Size, space); }
        catch (FabricException)
        {
            _ = AskAsync<Ack>(new Free(imported.Handle));
            throw;
        }
        if (token.Export.Device.Node == _spec.Device.Node) return new Reach(import.Iova, imported.Size, import);
        try
        {
            var copy = await MakeAsync(imported.Size, null, space);
            try { await SubmitAsync(new CommandBufferBuilder().Copy(copy.Iova.Value, import.Iova.Value, (ulong)imported.Size).Build(), 0, timeout); }
            catch (FabricException)
            {
                _ = UnmapAndFreeAsync(copy, space);
                throw;
            }
            return new Reach(copy.Iova, imported.Size, copy);
        }
        finally { _ = UnmapAndFreeAsync(import, space); }
    }

    private async Task SubmitAsync(byte[] program, int queue, TimeSpan timeout)
    {
        var tag = Interlocked.Increment(ref _nextTag);
        var fence = new TaskCompletionSource<FenceStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        _fences[tag] = fence;
        _context.Tell(new Submit(queue, program, [], 0, _self, tag));
        FenceStatus status;
        try { status = await fence.Task.WaitAsync(timeout); }
        catch (TimeoutException)
        {
            throw new FabricException(new FabricError(ErrorCode.ETIMEDOUT, $"a task's submission on {_spec.Name} did not end within {timeout.TotalSeconds:0.###} s"));
        }
        finally { _fences.TryRemove(tag, out _); }
        if (status.State == FenceState.Failed) throw new FabricException(status.Error!);
    }

    private void Accepted(SubmitAccepted m)
    {
        if (m.Completed is { } status) Signal(m.Tag, status);
    }

    private void Signal(long tag, FenceStatus status)
    {
        if (_fences.TryRemove(tag, out var fence)) fence.TrySetResult(status);
    }

    /// <summary>A buffer the client releases: unmapped where a task mapped it, then freed. Failures change nothing that matters.</summary>
    private async Task ReleaseAsync(BufferHandle handle, AddressSpaceId space)
    {
        if (_mapped.TryRemove(handle, out var lazy))
        {
            try
            {
                await UnmapAndFreeAsync(await lazy.Value, space);
                return;
            }
            catch (FabricException) { }
        }
        try { await AskAsync<Ack>(new Free(handle)); }
        catch (FabricException) { }
    }

    private async Task DropAsync(Lazy<Task<Reach>> reach, AddressSpaceId space)
    {
        try { await UnmapAndFreeAsync((await reach.Value).Held, space); }
        catch (FabricException) { } // never made: nothing to let go
    }

    private async Task UnmapAndFreeAsync(Mapping mapping, AddressSpaceId space)
    {
        try
        {
            await AskAsync<Unmapped>(new Unmap(space, mapping.Iova, mapping.Length));
            await AskAsync<Ack>(new Free(mapping.Handle));
        }
        catch (FabricException) { } // the context is closing or the buffer went with it
    }

    private async Task<T> AskAsync<T>(IFabricMessage request)
    {
        object reply;
        try { reply = await _context.Ask<object>(request, AskTimeout); }
        catch (AskTimeoutException)
        {
            throw new FabricException(new FabricError(ErrorCode.ETIMEDOUT, $"{_spec.Name} did not answer {request.GetType().Name} within {AskTimeout.TotalSeconds:0} s"));
        }
        return reply switch
        {
            T answer => answer,
            FabricError error => throw new FabricException(error),
            _ => throw new FabricException(new FabricError(ErrorCode.EIO, $"{_spec.Name} answered {request.GetType().Name} with {reply.GetType().Name}")),
        };
    }
}
