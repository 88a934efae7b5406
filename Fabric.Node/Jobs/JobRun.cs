using System.Collections.Immutable;
using System.Diagnostics;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Jobs;
using Fabric.Core.Protocol;

namespace Fabric.Node.Jobs;

/// <summary>What a run reports as it goes; the job entity turns these into persisted events.</summary>
public interface IJobRunEvents
{
    void TaskPlaced(string task, DeviceId device, int attempt);
    void TaskSucceeded(string task, DeviceId device, int attempt, TimeSpan took);
    void TaskFailed(string task, DeviceId device, int attempt, FabricError error, bool willRetry);
    void BuffersLost(ImmutableArray<string> buffers, string reason);
}

public sealed record JobRunOptions
{
    /// <summary>
    /// Failures of one task for transient causes that no lost node or context explains (a revoked import, a timeout, a
    /// busy device) before the job fails.
    /// </summary>
    public int MaxAttempts { get; init; } = 5;

    public TimeSpan TaskTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Tasks running at once across the cluster.</summary>
    public int Parallelism { get; init; } = 16;

    /// <summary>
    /// Attempts of one task when each failure is explained by a lost node or device (its results were recomputed and it
    /// was placed elsewhere): under repeated node loss a task may need more than <see cref="MaxAttempts"/>.
    /// </summary>
    public int MaxAttemptsOnNodeLoss { get; init; } = 20;

    /// <summary>Wait before a failed task is placed again: doubled each attempt, up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan Backoff { get; init; } = TimeSpan.FromMilliseconds(250);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a task pinned to a node (needs.node) waits for that node to be back before the job fails.</summary>
    public TimeSpan PinnedNodeWait { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>The outcome of a run: the job's output buffers, or the error that failed it.</summary>
public sealed record JobRunResult(FabricError? Error, ImmutableDictionary<string, byte[]> Outputs);

/// <summary>
/// Runs one job on the cluster through the Fabric client library, as any program could: a context per device it
/// uses, buffers allocated where tasks run, inputs moved between devices by dma-buf export/import (over the data
/// plane between nodes, never through this process), kernels compiled from the task steps. Buffers are values held
/// where they were produced; when a node is lost, the buffers it held are recomputed from their lineage (the tasks
/// that produced them), and the tasks it ran are placed again elsewhere. A task that fails for a reason of its own
/// (bad input, a fault) fails the job with the device's error.
/// </summary>
public sealed class JobRun(JobSpec spec, FabricClient client, IJobRunEvents events, JobRunOptions options)
{
    private readonly JobPlan _plan = JobPlan.Of(spec);
    private readonly Dictionary<string, BufferSpec> _buffers = spec.Buffers.ToDictionary(b => b.Name);
    private readonly Dictionary<string, TaskSpec> _tasks = spec.Tasks.ToDictionary(t => t.Name);
    private readonly Dictionary<DeviceId, Slot> _slots = [];
    private readonly Dictionary<string, Holding> _held = [];
    private readonly Dictionary<string, int> _attempts = [];
    private readonly Dictionary<string, int> _unexplainedFailures = [];
    private readonly Dictionary<string, DateTime> _notBefore = [];
    private readonly HashSet<DeviceId> _avoid = [];

    // Tasks run concurrently on the thread pool: _slots and _held are only touched under this lock.
    private readonly Lock _gate = new();

    /// <summary>A context this run holds on one device, with its address space.</summary>
    private sealed class Slot(DeviceContext context, AddressSpaceId space)
    {
        public DeviceContext Context { get; } = context;
        public AddressSpaceId Space { get; } = space;
        public DeviceId Device => Context.Device;
    }

    /// <summary>
    /// Where a buffer's current value lives, and where it has been made readable on other devices (<see cref="Reaches"/>:
    /// a buffer is a value, never written again, so one import — and on another node one copy — serves every later task
    /// there while the buffer lives). Its fields other than the first four are touched under the run's lock.
    /// </summary>
    private sealed class Holding(Slot slot, BufferHandle handle, Iova iova, long size)
    {
        public Slot Slot { get; } = slot;
        public BufferHandle Handle { get; } = handle;
        public Iova Iova { get; } = iova;
        public long Size { get; } = size;
        public Task<ExportToken>? Export { get; set; }
        public Dictionary<Slot, Task<Reach>> Reaches { get; } = [];
    }

    /// <summary>
    /// A holding made readable on another slot: the IOVA a task there reads it at, and the buffers that took (the import,
    /// and on another node the local copy), released when the holding is forgotten or the slot needs the memory.
    /// </summary>
    private sealed record Reach(Iova Iova, ImmutableArray<(BufferHandle Handle, Iova Iova, long Size)> Buffers);

    private sealed record Outcome(string Task, DeviceId Device, FabricError? Error, ImmutableArray<Slot> Involved);

    private static bool IsTransient(FabricError error) =>
        error.Code is ErrorCode.ENODEV or ErrorCode.EIO or ErrorCode.ETIMEDOUT or ErrorCode.EBUSY or ErrorCode.ENOMEM;

    public async Task<JobRunResult> RunAsync(CancellationToken cancel)
    {
        var running = new Dictionary<string, Task<Outcome>>();
        try
        {
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                var needed = _agenda ??= new Agenda(Needed());
                if (needed.Count == 0 && running.Count == 0)
                {
                    var outputs = await FetchOutputsAsync(cancel);
                    if (outputs is not null) return new JobRunResult(null, outputs);
                    continue; // a holder was lost while fetching: recompute
                }
                var devices = await client.ListDevicesAsync(cancel);
                var now = DateTime.UtcNow;
                foreach (var task in needed.InOrder.Where(t => !running.ContainsKey(t) && _notBefore.GetValueOrDefault(t) <= now && Ready(t))
                             .Take(Math.Max(0, options.Parallelism - running.Count)))
                {
                    var device = Place(task, devices, running.Keys);
                    if (device is null && _tasks[task].Needs.Node is { } pinned && devices.All(d => d.Id.Node != pinned))
                    {
                        var since = _pinnedNodeGoneSince.TryGetValue(task, out var t) ? t : _pinnedNodeGoneSince[task] = now;
                        if (now - since >= options.PinnedNodeWait)
                            return Failed(new FabricError(ErrorCode.ENODEV, $"task {task} needs node '{pinned}', which has been gone from the " +
                                                                            $"cluster for {options.PinnedNodeWait.TotalSeconds:0} s"));
                        _notBefore[task] = now + TimeSpan.FromSeconds(1); // wait for the node to return
                        continue;
                    }
                    _pinnedNodeGoneSince.Remove(task);
                    if (device is null)
                        return Failed(new FabricError(ErrorCode.ENOMEM, $"task {task} fits on no device of the cluster now ({devices.Count} devices)"));
                    var attempt = _attempts[task] = _attempts.GetValueOrDefault(task) + 1;
                    events.TaskPlaced(task, device.Value, attempt);
                    running[task] = RunTaskAsync(_tasks[task], device.Value, attempt, cancel);
                }
                var backingOff = _notBefore.Where(kv => kv.Value > now && !running.ContainsKey(kv.Key) && needed.Contains(kv.Key)).Select(kv => kv.Value).ToList();
                if (running.Count == 0 && backingOff.Count == 0)
                    return Failed(new FabricError(ErrorCode.EIO, $"job {spec.Name} cannot make progress: tasks {string.Join(", ", needed.InOrder)} wait on inputs nothing will produce"));

                // The next thing to act on: a task ending, or a failed task's wait running out.
                var waits = running.Values.Cast<Task>().ToList();
                if (backingOff.Count > 0) waits.Add(Task.Delay(backingOff.Min() - now + TimeSpan.FromMilliseconds(1), cancel));
                var finished = await Task.WhenAny(waits);
                if (finished is not Task<Outcome> ended) continue;
                var outcome = await ended;
                running.Remove(outcome.Task);
                if (outcome.Error is null)
                {
                    // Its results may already be lost again (their holder was found gone while this outcome waited
                    // here): then it stays on the agenda and runs again.
                    if (_plan.Task(outcome.Task).Outputs.All(IsHeld)) needed.Done(outcome.Task);
                    continue;
                }
                var tries = _attempts[outcome.Task];
                // No room on the device: the copies of other devices' buffers kept there for later tasks give theirs back.
                if (outcome.Error.Code == ErrorCode.ENOMEM) DropReachesOn(outcome.Device, cancel);
                // A failure explained by a node or device found lost is given more attempts than one of its own.
                var explained = IsTransient(outcome.Error) && await ForgetLostAsync(outcome.Involved, outcome.Error.Message);
                var unexplained = _unexplainedFailures[outcome.Task] = _unexplainedFailures.GetValueOrDefault(outcome.Task) + (explained ? 0 : 1);
                var limit = _tasks[outcome.Task].MaxAttempts;
                if (!IsTransient(outcome.Error) || (limit > 0 ? tries >= limit : unexplained >= options.MaxAttempts || tries >= options.MaxAttemptsOnNodeLoss))
                {
                    events.TaskFailed(outcome.Task, outcome.Device, tries, outcome.Error, willRetry: false);
                    return Failed(outcome.Error with { Message = $"task {outcome.Task} failed on {outcome.Device} (attempt {tries}): {outcome.Error.Message}" });
                }
                events.TaskFailed(outcome.Task, outcome.Device, tries, outcome.Error, willRetry: true);
                var backoff = options.Backoff * Math.Pow(2, Math.Min(tries - 1, 8));
                _notBefore[outcome.Task] = DateTime.UtcNow + (backoff < options.MaxBackoff ? backoff : options.MaxBackoff);
            }
        }
        finally
        {
            foreach (var task in running.Values) await task.ContinueWith(_ => { }, TaskScheduler.Default);
            foreach (var slot in _slots.Values) await slot.Context.DisposeAsync();
            _slots.Clear();
        }
    }

    private void DropReachesOn(DeviceId device, CancellationToken cancel)
    {
        Slot? slot;
        List<Holding> holdings;
        lock (_gate)
        {
            slot = _slots.GetValueOrDefault(device);
            holdings = [.. _held.Values];
        }
        if (slot is not null) DropReaches(holdings, slot, cancel);
    }

    private static JobRunResult Failed(FabricError error) => new(error, ImmutableDictionary<string, byte[]>.Empty);

    // The tasks still to run. Worked out from the lineage once, then kept as tasks succeed; worked out again when held
    // buffers are lost. Recomputing it after every task would make a wide job quadratic in its tasks.
    private Agenda? _agenda;

    /// <summary>Tasks in the order <see cref="Needed"/> found them, with O(1) removal of one that succeeded.</summary>
    private sealed class Agenda
    {
        private readonly LinkedList<string> _order = new();
        private readonly Dictionary<string, LinkedListNode<string>> _nodes = [];

        public Agenda(IEnumerable<string> tasks)
        {
            foreach (var task in tasks) _nodes[task] = _order.AddLast(task);
        }

        public int Count => _order.Count;
        public IEnumerable<string> InOrder => _order;
        public bool Contains(string task) => _nodes.ContainsKey(task);

        public void Done(string task)
        {
            if (_nodes.Remove(task, out var node)) _order.Remove(node);
        }
    }

    /// <summary>The tasks whose outputs are still needed: producers of missing results, and of missing inputs of those (lineage).</summary>
    private List<string> Needed()
    {
        var needed = new List<string>();
        var wanted = new Stack<string>(spec.Buffers.Where(b => b.Output && !IsHeld(b.Name)).Select(b => b.Name));
        var seen = new HashSet<string>();
        while (wanted.TryPop(out var buffer))
        {
            if (IsHeld(buffer) || _buffers[buffer].Init is not null) continue;
            var producer = _plan.Producer(buffer);
            if (producer is null || !seen.Add(producer)) continue;
            needed.Add(producer);
            foreach (var input in _plan.Task(producer).Inputs) wanted.Push(input);
        }
        return needed;
    }

    private bool IsHeld(string buffer)
    {
        lock (_gate) return _held.ContainsKey(buffer);
    }

    private Holding? HeldOrNull(string buffer)
    {
        lock (_gate) return _held.GetValueOrDefault(buffer);
    }

    private bool Ready(string task) => _plan.Task(task).Inputs.All(b => IsHeld(b) || _buffers[b].Init is not null);

    private DeviceId? Place(string task, IReadOnlyList<DeviceInfo> devices, IEnumerable<string> running)
    {
        var spec = _tasks[task];
        var memory = _plan.Task(task).MemoryBytes;
        var local = new Dictionary<DeviceId, long>();
        foreach (var input in _plan.Task(task).Inputs)
            if (HeldOrNull(input) is { } holding)
            {
                local[holding.Slot.Device] = local.GetValueOrDefault(holding.Slot.Device) + holding.Size;
                // A device it was already made readable on needs no memory and no transfer for it either.
                lock (_gate)
                    foreach (var (slot, reach) in holding.Reaches)
                        if (reach.IsCompletedSuccessfully && slot.Device != holding.Slot.Device)
                            local[slot.Device] = local.GetValueOrDefault(slot.Device) + holding.Size;
            }
        var load = running.Select(t => _lastPlacement.GetValueOrDefault(t)).Where(d => d.Node is not null)
            .GroupBy(d => d).ToDictionary(g => g.Key, g => g.Count());
        var choice = Scheduler.Choose(new Scheduler.Demand(task, memory, local, spec.Needs.Node, spec.Needs.DeviceKind, load, spec.Needs.Prefer), devices, _avoid);
        if (choice is { } chosen) _lastPlacement[task] = chosen;
        return choice;
    }

    private readonly Dictionary<string, DeviceId> _lastPlacement = [];
    private readonly Dictionary<string, DateTime> _pinnedNodeGoneSince = [];
    private readonly Dictionary<DeviceId, Task<Slot>> _opening = [];

    /// <summary>This run's context on <paramref name="device"/>, opened once however many tasks ask for it at the same time.</summary>
    private async Task<Slot> SlotAsync(DeviceId device, CancellationToken cancel)
    {
        Task<Slot>? opening;
        lock (_gate)
        {
            if (_slots.TryGetValue(device, out var slot) && slot.Context.IsUsable) return slot;
            if (!_opening.TryGetValue(device, out opening)) _opening[device] = opening = Task.Run(() => OpenSlotAsync(device, cancel), cancel);
        }
        try
        {
            return await opening;
        }
        finally
        {
            lock (_gate)
                if (_opening.TryGetValue(device, out var current) && current == opening)
                    _opening.Remove(device);
        }
    }

    private async Task<Slot> OpenSlotAsync(DeviceId device, CancellationToken cancel)
    {
        var context = await client.OpenAsync(device, cancel);
        var space = await context.CreateAddressSpaceAsync(cancel);
        await context.AttachAsync(space, cancel);
        var slot = new Slot(context, space);
        lock (_gate) _slots[device] = slot;
        return slot;
    }

    private async Task<Outcome> RunTaskAsync(TaskSpec task, DeviceId device, int attempt, CancellationToken cancel)
    {
        var involved = new HashSet<Slot>();
        var clock = Stopwatch.StartNew();
        var cleanup = new List<(BufferHandle Handle, Iova Iova, long Size)>();
        var outputs = new List<(string Name, BufferHandle Handle, Iova Iova, long Size)>();
        Slot? slot = null;
        try
        {
            slot = await SlotAsync(device, cancel);
            involved.Add(slot);
            var iovas = new Dictionary<string, ulong>();
            foreach (var input in _plan.Task(task.Name).Inputs)
            {
                var holding = HeldOrNull(input);
                if (holding is null && _buffers[input].Init is null)
                {
                    // Held when the task was placed, forgotten since (its holder was found lost): its producer runs again first.
                    throw new FabricException(new FabricError(ErrorCode.ENODEV,
                        $"input {input} of task {task.Name} was lost with its holder before the task started; it is recomputed"));
                }
                if (holding is null)
                {
                    // A job input: made where it is first needed.
                    var data = BufferInit.Materialize(_buffers[input]);
                    var handle = await slot.Context.AllocateAsync(data.Length, cancel: cancel);
                    await slot.Context.WriteAsync(handle, 0, data, cancel);
                    var iova = await slot.Context.MapAsync(slot.Space, handle, Access.ReadWrite, cancel: cancel);
                    var made = new Holding(slot, handle, iova, data.Length);
                    lock (_gate) holding = _held.TryAdd(input, made) ? made : _held[input];
                    if (holding != made) cleanup.Add((handle, iova, data.Length)); // another task made it first
                }
                involved.Add(holding.Slot);
                if (holding.Slot == slot)
                {
                    iovas[input] = holding.Iova;
                    continue;
                }
                // Another device holds it: import it (P2P), and on another node copy it in first.
                if (!holding.Slot.Context.IsUsable)
                {
                    // Its holder's context went with its node (maybe a new incarnation of that device is back, under
                    // the same id, without the buffer): the failure makes the run forget it and recompute it.
                    throw new FabricException(new FabricError(ErrorCode.ENODEV,
                        $"input {input} of task {task.Name} was held by this run's context on {holding.Slot.Device}, which is gone"));
                }
                iovas[input] = (await ReachAsync(holding, slot, cancel)).Iova;
            }
            foreach (var output in _plan.Task(task.Name).Outputs)
            {
                var size = _buffers[output].Size;
                var handle = await slot.Context.AllocateAsync(size, cancel: cancel);
                var iova = await slot.Context.MapAsync(slot.Space, handle, Access.ReadWrite, cancel: cancel);
                outputs.Add((output, handle, iova, size));
                iovas[output] = iova;
            }
            var program = TaskCompiler.Compile(task, name => iovas[name], name => _buffers[name].Size);
            await slot.Context.RunAsync(program, options.TaskTimeout, cancel: cancel);
            lock (_gate)
            {
                // Its context may have been found lost while it ran: then its results are not kept (they are not reachable).
                if (!(_slots.TryGetValue(device, out var current) && current == slot && slot.Context.IsUsable))
                    throw new FabricException(new FabricError(ErrorCode.ENODEV, $"the context of this run on {device} was lost as task {task.Name} ended"));
                foreach (var (name, handle, iova, size) in outputs) _held[name] = new Holding(slot, handle, iova, size);
            }
            outputs.Clear();
            events.TaskSucceeded(task.Name, device, attempt, clock.Elapsed);
            await ReleaseAsync(slot, cleanup, cancel);
            return new Outcome(task.Name, device, null, [.. involved]);
        }
        catch (FabricException e)
        {
            if (slot is not null) await ReleaseAsync(slot, [.. cleanup, .. outputs.Select(o => (o.Handle, o.Iova, o.Size))], cancel);
            return new Outcome(task.Name, device, e.Error, [.. involved]);
        }
    }

    /// <summary>Imports and staging copies are dropped once the task has run; failures here change nothing that matters.</summary>
    private static async Task ReleaseAsync(Slot slot, List<(BufferHandle Handle, Iova Iova, long Size)> buffers, CancellationToken cancel)
    {
        if (!slot.Context.IsUsable) return; // gone with its node: nothing left to release
        foreach (var (handle, iova, size) in buffers)
        {
            try
            {
                await slot.Context.UnmapAsync(slot.Space, iova, (ulong)((size + 4095) / 4096 * 4096), cancel);
                await slot.Context.FreeAsync(handle, cancel);
            }
            catch (FabricException) { }
        }
    }

    /// <summary>
    /// <paramref name="holding"/> readable on <paramref name="slot"/>: imported there once (P2P: exported once by its
    /// holder), and on another node copied into that device's memory once; every later task there reads the same.
    /// Several tasks asking at once share one import. A failed one is forgotten, so that the next asks again.
    /// </summary>
    private async Task<Reach> ReachAsync(Holding holding, Slot slot, CancellationToken cancel)
    {
        Task<Reach> reach;
        lock (_gate)
        {
            if (!holding.Reaches.TryGetValue(slot, out reach!) || reach.IsFaulted || reach.IsCanceled)
                holding.Reaches[slot] = reach = Task.Run(() => ImportAsync(holding, slot, cancel), cancel);
        }
        try
        {
            return await reach;
        }
        catch (Exception) when (!reach.IsCompletedSuccessfully)
        {
            lock (_gate)
                if (holding.Reaches.TryGetValue(slot, out var current) && current == reach)
                    holding.Reaches.Remove(slot);
            throw;
        }
    }

    private async Task<Reach> ImportAsync(Holding holding, Slot slot, CancellationToken cancel)
    {
        Task<ExportToken> export;
        lock (_gate) export = holding.Export ??= ExportAsync(holding, cancel);
        ExportToken token;
        try { token = await export; }
        catch (FabricException)
        {
            lock (_gate) if (holding.Export == export) holding.Export = null;
            throw;
        }
        var imported = await slot.Context.ImportAsync(token, cancel);
        var importIova = await slot.Context.MapAsync(slot.Space, imported.Handle, Access.Read, cancel: cancel);
        if (holding.Slot.Device.Node == slot.Device.Node) return new Reach(importIova, [(imported.Handle, importIova, imported.Size)]);
        // On another node an import reads over the data plane: copied once into this device's memory, it is read locally.
        var local = await slot.Context.AllocateAsync(holding.Size, cancel: cancel);
        var localIova = await slot.Context.MapAsync(slot.Space, local, Access.ReadWrite, cancel: cancel);
        await slot.Context.RunAsync(new CommandBufferBuilder().Copy(localIova, importIova, (ulong)holding.Size).Build(), options.TaskTimeout, cancel: cancel);
        return new Reach(localIova, [(imported.Handle, importIova, imported.Size), (local, localIova, holding.Size)]);
    }

    private static async Task<ExportToken> ExportAsync(Holding holding, CancellationToken cancel) =>
        (await holding.Slot.Context.ExportAsync(holding.Handle, Access.Read, cancel)).Token;

    /// <summary>Releases the reaches of <paramref name="holdings"/> (on every slot, or on <paramref name="only"/>); in the background.</summary>
    private void DropReaches(IEnumerable<Holding> holdings, Slot? only, CancellationToken cancel)
    {
        var dropped = new List<(Slot Slot, Task<Reach> Reach)>();
        lock (_gate)
            foreach (var holding in holdings)
                foreach (var (slot, reach) in holding.Reaches.Where(kv => only is null || kv.Key == only).ToList())
                {
                    holding.Reaches.Remove(slot);
                    dropped.Add((slot, reach));
                }
        foreach (var (slot, reach) in dropped) _ = ReleaseReachAsync(slot, reach, cancel);
    }

    private static async Task ReleaseReachAsync(Slot slot, Task<Reach> reach, CancellationToken cancel)
    {
        Reach made;
        try { made = await reach; }
        catch (Exception) { return; } // never made: nothing to release
        await ReleaseAsync(slot, [.. made.Buffers], cancel);
    }

    /// <summary>
    /// After a transient failure: every context involved is probed; one that does not answer (its node lost, its
    /// context gone) is dropped, its device avoided from now on, and the buffers it held are forgotten — their producers
    /// run again (lineage). Returns whether one was found lost (the failure is explained).
    /// </summary>
    private async Task<bool> ForgetLostAsync(IEnumerable<Slot> involved, string reason)
    {
        var lost = new List<string>();
        var found = false;
        foreach (var slot in involved.Distinct())
        {
            var alive = slot.Context.IsUsable;
            if (alive)
            {
                try { await slot.Context.GetInfoAsync().WaitAsync(TimeSpan.FromSeconds(5)); }
                catch (Exception e) when (e is FabricException or TimeoutException) { alive = false; }
            }
            if (alive) continue;
            found = true;
            _avoid.Add(slot.Device);
            var forgotten = new List<Holding>();
            lock (_gate)
            {
                if (_slots.TryGetValue(slot.Device, out var current) && current == slot) _slots.Remove(slot.Device);
                foreach (var (name, holding) in _held.Where(kv => kv.Value.Slot == slot).ToList())
                {
                    _held.Remove(name);
                    lost.Add(name);
                    forgotten.Add(holding);
                }
                foreach (var holding in _held.Values) holding.Reaches.Remove(slot); // gone with the slot
            }
            DropReaches(forgotten, null, CancellationToken.None);
        }
        if (lost.Count > 0)
        {
            _agenda = null; // their producers (and what those need) are to run again
            events.BuffersLost([.. lost], reason);
        }
        return found;
    }

    /// <summary>How many outputs are read back at once at the end of a run.</summary>
    private const int FetchParallelism = 32;

    /// <summary>Reads every output back from where it is held, many at once; null when a holder is gone (the caller recomputes).</summary>
    private async Task<ImmutableDictionary<string, byte[]>?> FetchOutputsAsync(CancellationToken cancel)
    {
        var wanted = spec.Buffers.Where(b => b.Output).Select(b => (b.Name, b.Size, Holding: HeldOrNull(b.Name))).ToList();
        if (wanted.Any(w => w.Holding is null)) return null;
        var outputs = new System.Collections.Concurrent.ConcurrentDictionary<string, byte[]>();
        var lost = new System.Collections.Concurrent.ConcurrentBag<(Slot Slot, FabricError Error)>();
        await Parallel.ForEachAsync(wanted, new ParallelOptions { MaxDegreeOfParallelism = FetchParallelism, CancellationToken = cancel }, async (w, token) =>
        {
            try
            {
                outputs[w.Name] = await w.Holding!.Slot.Context.ReadAsync(w.Holding.Handle, 0, checked((int)w.Size), token);
            }
            catch (FabricException e) when (IsTransient(e.Error))
            {
                lost.Add((w.Holding!.Slot, e.Error));
            }
        });
        if (lost.IsEmpty) return outputs.ToImmutableDictionary();
        foreach (var (slot, error) in lost.DistinctBy(l => l.Slot)) await ForgetLostAsync([slot], error.Message);
        return null;
    }
}
