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

    /// <summary>Several placements at once (one round of the run); reported one by one unless the receiver takes them together.</summary>
    void TasksPlaced(IReadOnlyList<(string Task, DeviceId Device, int Attempt)> placed)
    {
        foreach (var (task, device, attempt) in placed) TaskPlaced(task, device, attempt);
    }

    /// <summary>Several successes at once (one device's batch).</summary>
    void TasksSucceeded(IReadOnlyList<(string Task, DeviceId Device, int Attempt, TimeSpan Took)> succeeded)
    {
        foreach (var (task, device, attempt, took) in succeeded) TaskSucceeded(task, device, attempt, took);
    }
}

public sealed record JobRunOptions
{
    /// <summary>
    /// Failures of one task for transient causes that no lost node or context explains (a revoked import, a timeout, a
    /// busy device) before the job fails.
    /// </summary>
    public int MaxAttempts { get; init; } = 5;

    public TimeSpan TaskTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Tasks running at once across the cluster. Those placed on one device travel together (see
    /// <see cref="TaskRequests.RunTasks"/>), so this bounds the memory they take more than it slows them.
    /// </summary>
    public int Parallelism { get; init; } = 256;

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
/// (bad input, a fault) fails the job with the device's error. Its state is not guarded: it runs on one thread of
/// control, its <see cref="JobRunActor"/>'s.
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

    // No lock: a run is driven by its JobRunActor, on whose task scheduler every continuation of these async steps runs,
    // one at a time (many device batches are under way at once, but their endings are taken in turn).

    /// <summary>A context this run holds on one device, with its address space.</summary>
    private sealed class Slot(DeviceContext context, AddressSpaceId space)
    {
        public DeviceContext Context { get; } = context;
        public AddressSpaceId Space { get; } = space;
        public DeviceId Device => Context.Device;
    }

    /// <summary>
    /// Where a buffer's current value lives (a buffer of this run's context there, mapped by its device's task runner),
    /// and the slots where tasks have read it (<see cref="ReachedOn"/>: a buffer is a value, never written again, so its
    /// export is imported there once — on another node copied once — and serves every later task there while the
    /// buffer lives).
    /// </summary>
    private sealed class Holding(Slot slot, BufferHandle handle, long size)
    {
        public Slot Slot { get; } = slot;
        public BufferHandle Handle { get; } = handle;
        public long Size { get; } = size;
        public Task<ExportToken>? Export { get; set; }
        public ExportId? Exported { get; set; } // once Export has succeeded
        public HashSet<Slot> ReachedOn { get; } = [];
    }

    /// <param name="Unopened">The run could not open a context on the device (nothing of it was involved yet).</param>
    private sealed record Outcome(string Task, DeviceId Device, FabricError? Error, ImmutableArray<Slot> Involved, bool Unopened = false);


    public async Task<JobRunResult> RunAsync(CancellationToken cancel)
    {
        var running = new HashSet<string>();
        var batches = new List<Task<Outcome[]>>();
        try
        {
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                var needed = _agenda ??= Agenda.Of(_plan, IsHeld);
                if (needed.Count == 0 && running.Count == 0)
                {
                    var outputs = await FetchOutputsAsync(cancel);
                    if (outputs is not null) return new JobRunResult(null, outputs);
                    continue; // a holder was lost while fetching: recompute
                }
                var devices = await client.ListDevicesAsync(cancel);
                var now = DateTime.UtcNow;
                var placed = new Dictionary<DeviceId, List<(TaskSpec Task, int Attempt)>>();
                var placements = new List<(string, DeviceId, int)>();
                foreach (var task in needed.InOrder.Where(t => !running.Contains(t) && _notBefore.GetValueOrDefault(t) <= now && Ready(t))
                             .Take(Math.Max(0, options.Parallelism - running.Count)))
                {
                    var device = Place(task, devices);
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
                    placements.Add((task, device.Value, attempt));
                    running.Add(task);
                    _load[device.Value] = _load.GetValueOrDefault(device.Value) + 1;
                    if (!placed.TryGetValue(device.Value, out var batch)) placed[device.Value] = batch = [];
                    batch.Add((_tasks[task], attempt));
                }
                if (placements.Count > 0) events.TasksPlaced(placements);
                foreach (var (device, placedThere) in placed)
                    foreach (var batch in placedThere.Chunk(BatchSize))
                        batches.Add(RunBatchAsync(device, [.. batch], cancel));
                var backingOff = _notBefore.Where(kv => kv.Value > now && !running.Contains(kv.Key) && needed.Contains(kv.Key)).Select(kv => kv.Value).ToList();
                if (running.Count == 0 && backingOff.Count == 0)
                    return Failed(new FabricError(ErrorCode.EIO, $"job {spec.Name} cannot make progress: tasks {string.Join(", ", needed.InOrder)} wait on inputs nothing will produce"));

                // The next thing to act on: a batch of tasks ending, or a failed task's wait running out.
                var waits = batches.Cast<Task>().ToList();
                if (backingOff.Count > 0) waits.Add(Task.Delay(backingOff.Min() - now + TimeSpan.FromMilliseconds(1), cancel));
                var finished = await Task.WhenAny(waits);
                if (finished is not Task<Outcome[]> ended) continue;
                batches.Remove(ended);
                foreach (var outcome in await ended)
                {
                    running.Remove(outcome.Task);
                    _load[outcome.Device] -= 1;
                    if (await ActOnAsync(outcome, needed) is { } failed) return failed;
                }
            }
        }
        finally
        {
            foreach (var batch in batches) await batch.ContinueWith(_ => { }, TaskScheduler.Default);
            foreach (var slot in _slots.Values) await slot.Context.DisposeAsync();
            _slots.Clear();
        }
    }

    /// <summary>What an ended task means for the run: done, placed again after a wait, or (returned) the run's failure.</summary>
    private async Task<JobRunResult?> ActOnAsync(Outcome outcome, Agenda needed)
    {
        if (outcome.Error is null)
        {
            // Its results may already be lost again (their holder was found gone while this outcome waited
            // here): then it stays on the agenda and runs again.
            if (_plan.Task(outcome.Task).Outputs.All(IsHeld)) needed.Done(outcome.Task);
            return null;
        }
        var tries = _attempts[outcome.Task];
        // No room on the device: the copies of other devices' buffers kept there for later tasks give theirs back.
        if (outcome.Error.Code == ErrorCode.ENOMEM) DropReachesOn(outcome.Device);
        // A failure explained by a node or device found lost is given more attempts than one of its own.
        var explained = RetryPolicy.IsTransient(outcome.Error) && (outcome.Unopened ? Unreachable(outcome) : await ForgetLostAsync(outcome.Involved, outcome.Error.Message));
        var unexplained = _unexplainedFailures[outcome.Task] = _unexplainedFailures.GetValueOrDefault(outcome.Task) + (explained ? 0 : 1);
        var decision = RetryPolicy.Decide(outcome.Error, tries, unexplained, _tasks[outcome.Task].MaxAttempts, options);
        events.TaskFailed(outcome.Task, outcome.Device, tries, outcome.Error, willRetry: decision.Retry);
        if (!decision.Retry)
            return Failed(outcome.Error with { Message = $"task {outcome.Task} failed on {outcome.Device} (attempt {tries}): {outcome.Error.Message}" });
        _notBefore[outcome.Task] = DateTime.UtcNow + decision.Wait;
        return null;
    }

    /// <summary>
    /// The device could not be opened because it or its node is gone, or did not answer (the listing that offered it
    /// was older than the loss): explained, and the device avoided while others fit. A new incarnation that comes back
    /// is offered again once the others are full or gone too.
    /// </summary>
    private bool Unreachable(Outcome outcome)
    {
        if (outcome.Error!.Code is not (ErrorCode.ENODEV or ErrorCode.ETIMEDOUT)) return false;
        _avoid.Add(outcome.Device);
        return true;
    }

    /// <summary>No room on the device: its imports of other devices' buffers (kept for later tasks) go with its next message.</summary>
    private void DropReachesOn(DeviceId device)
    {
        if (_slots.GetValueOrDefault(device) is not { } slot) return;
        foreach (var holding in _held.Values) holding.ReachedOn.Remove(slot);
        Chores(slot).ForgetAll = true;
    }

    private static JobRunResult Failed(FabricError error) => new(error, ImmutableDictionary<string, byte[]>.Empty);

    // The tasks still to run (lineage): worked out again when held buffers are lost.
    private Agenda? _agenda;

    private bool IsHeld(string buffer)
    {
        return _held.ContainsKey(buffer);
    }

    private Holding? HeldOrNull(string buffer)
    {
        return _held.GetValueOrDefault(buffer);
    }

    private bool Ready(string task) => _plan.Task(task).Inputs.All(b => IsHeld(b) || _buffers[b].Init is not null);

    private DeviceId? Place(string task, IReadOnlyList<DeviceInfo> devices)
    {
        var spec = _tasks[task];
        var memory = _plan.Task(task).MemoryBytes;
        var local = new Dictionary<DeviceId, long>();
        foreach (var input in _plan.Task(task).Inputs)
            if (HeldOrNull(input) is { } holding)
            {
                local[holding.Slot.Device] = local.GetValueOrDefault(holding.Slot.Device) + holding.Size;
                // A device it was already made readable on needs no memory and no transfer for it either.
                foreach (var slot in holding.ReachedOn)
                    if (slot.Device != holding.Slot.Device)
                        local[slot.Device] = local.GetValueOrDefault(slot.Device) + holding.Size;
            }
        return Scheduler.Choose(new Scheduler.Demand(task, memory, local, spec.Needs.Node, spec.Needs.DeviceKind, _load, spec.Needs.Prefer), devices, _avoid);
    }

    // Tasks of this run now running on each device: kept as they are placed and end, never counted afresh per placement
    // (that made placing a round of a wide job quadratic in the tasks running).
    private readonly Dictionary<DeviceId, int> _load = [];
    private readonly Dictionary<string, DateTime> _pinnedNodeGoneSince = [];
    private readonly Dictionary<DeviceId, Task<Slot>> _opening = [];

    /// <summary>This run's context on <paramref name="device"/>, opened once however many tasks ask for it at the same time.</summary>
    private async Task<Slot> SlotAsync(DeviceId device, CancellationToken cancel)
    {
        Task<Slot>? opening;
        if (_slots.TryGetValue(device, out var slot) && slot.Context.IsUsable) return slot;
        if (!_opening.TryGetValue(device, out opening)) _opening[device] = opening = OpenSlotAsync(device, cancel);
        try
        {
            return await opening;
        }
        finally
        {
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
        _slots[device] = slot;
        return slot;
    }

    /// <summary>Tasks for one device travel to it in messages of at most this many (each answered once all of them ended).</summary>
    private const int BatchSize = 64;

    /// <summary>
    /// Runs <paramref name="batch"/> on <paramref name="device"/> in one device-side message (<see cref="TaskRequests"/>):
    /// each task's inputs are named where they are (a buffer of this run's context there, or an export of the device
    /// holding it: imported there once, and on another node copied there once), its outputs are made there.
    /// </summary>
    private async Task<Outcome[]> RunBatchAsync(DeviceId device, List<(TaskSpec Task, int Attempt)> batch, CancellationToken cancel)
    {
        Slot slot;
        try { slot = await SlotAsync(device, cancel); }
        catch (FabricException e) { return [.. batch.Select(b => new Outcome(b.Task.Name, device, e.Error, [], Unopened: true))]; }
        var outcomes = new Outcome?[batch.Count];
        var sent = new List<(int Index, HashSet<Slot> Involved)>();
        var requests = new List<TaskRequests.TaskRequest>();
        for (var i = 0; i < batch.Count; i++)
        {
            var involved = new HashSet<Slot> { slot };
            try
            {
                requests.Add(await PrepareAsync(batch[i].Task, slot, i, involved, cancel));
                sent.Add((i, involved));
            }
            catch (FabricException e) { outcomes[i] = new Outcome(batch[i].Task.Name, device, e.Error, [.. involved]); }
        }
        var (release, forget, forgetAll) = TakeChores(slot);
        ImmutableArray<TaskRequests.TaskOutcome> ran;
        try { ran = await slot.Context.RunTasksAsync(requests, options.TaskTimeout, release, forget, forgetAll, cancel); }
        catch (FabricException e)
        {
            // Not delivered: what the device was to let go goes with its next message instead.
            var chores = Chores(slot);
            chores.Release.AddRange(release);
            chores.Forget.UnionWith(forget);
            chores.ForgetAll |= forgetAll;
            foreach (var (i, involved) in sent) outcomes[i] = new Outcome(batch[i].Task.Name, device, e.Error, [.. involved]);
            return [.. outcomes.Select(o => o!)];
        }
        var succeeded = new List<(string, DeviceId, int, TimeSpan)>();
        for (var k = 0; k < sent.Count; k++)
        {
            var (i, involved) = sent[k];
            var (task, attempt) = batch[i];
            var result = ran[k];
            var error = result.Error;
            if (error is null)
            {
                var outputs = _plan.Task(task.Name).Outputs;
                // Its context may have been found lost while it ran: then its results are not kept (they are not reachable).
                if (!(_slots.TryGetValue(device, out var current) && current == slot && slot.Context.IsUsable))
                    error = new FabricError(ErrorCode.ENODEV, $"the context of this run on {device} was lost as task {task.Name} ended");
                else
                {
                    for (var j = 0; j < outputs.Length; j++) _held[outputs[j]] = new Holding(slot, result.Made[j].Handle, _buffers[outputs[j]].Size);
                    foreach (var input in _plan.Task(task.Name).Inputs)
                        if (_held.TryGetValue(input, out var holding) && holding.Slot != slot) holding.ReachedOn.Add(slot);
                }
                if (error is null) succeeded.Add((task.Name, device, attempt, TimeSpan.FromTicks(result.Microseconds * 10)));
            }
            outcomes[i] = new Outcome(task.Name, device, error, [.. involved]);
        }
        if (succeeded.Count > 0) events.TasksSucceeded(succeeded);
        return [.. outcomes.Select(o => o!)];
    }

    /// <summary>The device-side request for <paramref name="task"/> on <paramref name="slot"/>: its inputs where they are, then its outputs.</summary>
    private async Task<TaskRequests.TaskRequest> PrepareAsync(TaskSpec task, Slot slot, long tag, HashSet<Slot> involved, CancellationToken cancel)
    {
        var operands = new List<TaskRequests.Operand>();
        var index = new Dictionary<string, int>();
        foreach (var input in _plan.Task(task.Name).Inputs)
        {
            var holding = HeldOrNull(input);
            if (holding is null && _buffers[input].Init is null)
            {
                // Held when the task was placed, forgotten since (its holder was found lost): its producer runs again first.
                throw new FabricException(new FabricError(ErrorCode.ENODEV,
                    $"input {input} of task {task.Name} was lost with its holder before the task started; it is recomputed"));
            }
            holding ??= await JobInputAsync(input, slot, cancel); // a job input: made where it is first needed
            involved.Add(holding.Slot);
            index[input] = operands.Count;
            if (holding.Slot == slot)
            {
                operands.Add(TaskRequests.Operand.Local(holding.Handle, holding.Size));
                continue;
            }
            if (!holding.Slot.Context.IsUsable)
            {
                // Its holder's context went with its node (maybe a new incarnation of that device is back, under
                // the same id, without the buffer): the failure makes the run forget it and recompute it.
                throw new FabricException(new FabricError(ErrorCode.ENODEV,
                    $"input {input} of task {task.Name} was held by this run's context on {holding.Slot.Device}, which is gone"));
            }
            operands.Add(TaskRequests.Operand.Import(await ExportOfAsync(holding, cancel), holding.Size));
        }
        foreach (var output in _plan.Task(task.Name).Outputs)
        {
            index.TryAdd(output, operands.Count);
            operands.Add(TaskRequests.Operand.Output(_buffers[output].Size));
        }
        var program = TaskCompiler.Compile(task, name => TaskOperands.Address(index[name]), name => _buffers[name].Size);
        return new TaskRequests.TaskRequest(tag, program, [.. operands]);
    }

    private readonly Dictionary<string, Task<Holding>> _makingInputs = [];

    /// <summary>A job input made on <paramref name="slot"/> (one device-side task with no program), once however many tasks ask at the same time.</summary>
    private Task<Holding> JobInputAsync(string input, Slot slot, CancellationToken cancel)
    {
        if (_held.TryGetValue(input, out var held)) return Task.FromResult(held);
        if (!_makingInputs.TryGetValue(input, out var making) || making.IsFaulted || making.IsCanceled)
            _makingInputs[input] = making = MakeAsync();
        return making;

        async Task<Holding> MakeAsync()
        {
            var data = BufferInit.Materialize(_buffers[input]);
            var made = (await slot.Context.RunTasksAsync([new TaskRequests.TaskRequest(0, new CommandBufferBuilder().Build(), [TaskRequests.Operand.Of(data)])],
                options.TaskTimeout, cancel: cancel))[0];
            if (made.Error is { } error) throw new FabricException(error);
            var holding = new Holding(slot, made.Made[0].Handle, data.Length);
            _makingInputs.Remove(input);
            if (_held.TryAdd(input, holding)) return holding;
            Chores(slot).Release.Add(holding.Handle); // made meanwhile by another way: this copy goes
            return _held[input];
        }
    }

    /// <summary>The holding's export, made once by its holder (and again after a failed try).</summary>
    private async Task<ExportToken> ExportOfAsync(Holding holding, CancellationToken cancel)
    {
        Task<ExportToken> export;
        export = holding.Export ??= ExportAsync(holding, cancel);
        try
        {
            var token = await export;
            holding.Exported = token.Export;
            return token;
        }
        catch (FabricException)
        {
            if (holding.Export == export) holding.Export = null;
            throw;
        }
    }

    private static async Task<ExportToken> ExportAsync(Holding holding, CancellationToken cancel) =>
        (await holding.Slot.Context.ExportAsync(holding.Handle, Access.Read, cancel)).Token;

    /// <summary>What a slot's device is to let go with the next message it gets: buffers to free, imports to drop.</summary>
    private sealed class SlotChores
    {
        public List<BufferHandle> Release { get; } = [];
        public HashSet<ExportId> Forget { get; } = [];
        public bool ForgetAll { get; set; }
    }

    private readonly Dictionary<Slot, SlotChores> _chores = [];

    private SlotChores Chores(Slot slot) => _chores.TryGetValue(slot, out var chores) ? chores : _chores[slot] = new SlotChores();

    private (List<BufferHandle> Release, List<ExportId> Forget, bool ForgetAll) TakeChores(Slot slot)
    {
        if (!_chores.Remove(slot, out var chores)) return ([], [], false);
        return (chores.Release, [.. chores.Forget], chores.ForgetAll);
    }

    /// <summary>The imports of <paramref name="holdings"/> are let go where they were made readable (on every slot, or on <paramref name="only"/>).</summary>
    private void DropReaches(IEnumerable<Holding> holdings, Slot? only)
    {
        foreach (var holding in holdings)
        {
            if (holding.Exported is not { } export) continue;
            foreach (var slot in holding.ReachedOn.Where(s => only is null || s == only).ToList())
            {
                holding.ReachedOn.Remove(slot);
                Chores(slot).Forget.Add(export);
            }
        }
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
            if (_slots.TryGetValue(slot.Device, out var current) && current == slot) _slots.Remove(slot.Device);
            foreach (var (name, holding) in _held.Where(kv => kv.Value.Slot == slot).ToList())
            {
                _held.Remove(name);
                lost.Add(name);
                forgotten.Add(holding);
            }
            foreach (var holding in _held.Values) holding.ReachedOn.Remove(slot); // gone with the slot
            _chores.Remove(slot);
            DropReaches(forgotten, null);
        }
        if (lost.Count > 0)
        {
            _agenda = null; // their producers (and what those need) are to run again
            events.BuffersLost([.. lost], reason);
        }
        return found;
    }

    /// <summary>Outputs up to this size are read back many per message; larger ones alone, in chunks.</summary>
    private const int SmallOutput = 16 * 1024;

    /// <summary>Reads every output back from where it is held (per device, many per message); null when a holder is gone (the caller recomputes).</summary>
    private async Task<ImmutableDictionary<string, byte[]>?> FetchOutputsAsync(CancellationToken cancel)
    {
        var wanted = spec.Buffers.Where(b => b.Output).Select(b => (b.Name, Size: checked((int)b.Size), Holding: HeldOrNull(b.Name))).ToList();
        if (wanted.Any(w => w.Holding is null)) return null;
        var outputs = new System.Collections.Concurrent.ConcurrentDictionary<string, byte[]>();
        var lost = new System.Collections.Concurrent.ConcurrentBag<(Slot Slot, FabricError Error)>();
        async Task FetchAsync(Slot slot, List<(string Name, int Size)> small, List<(string Name, int Size, BufferHandle Handle)> large, List<BufferHandle> handles)
        {
            try
            {
                var data = await slot.Context.ReadBuffersAsync([.. small.Select((w, i) => (handles[i], w.Size))], cancel);
                for (var i = 0; i < small.Count; i++) outputs[small[i].Name] = data[i];
                foreach (var (name, size, handle) in large) outputs[name] = await slot.Context.ReadAsync(handle, 0, size, cancel);
            }
            catch (FabricException e) when (RetryPolicy.IsTransient(e.Error))
            {
                lost.Add((slot, e.Error));
            }
        }
        await Task.WhenAll(wanted.GroupBy(w => w.Holding!.Slot).Select(g =>
        {
            var small = g.Where(w => w.Size <= SmallOutput).ToList();
            return FetchAsync(g.Key, [.. small.Select(w => (w.Name, w.Size))],
                [.. g.Where(w => w.Size > SmallOutput).Select(w => (w.Name, w.Size, w.Holding!.Handle))], [.. small.Select(w => w.Holding!.Handle)]);
        }));
        if (lost.IsEmpty) return outputs.ToImmutableDictionary();
        foreach (var (slot, error) in lost.DistinctBy(l => l.Slot)) await ForgetLostAsync([slot], error.Message);
        return null;
    }
}
