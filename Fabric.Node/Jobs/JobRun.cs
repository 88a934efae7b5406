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
    /// <summary>Attempts of one task for transient causes (a lost device or node, a revoked import, a timeout).</summary>
    public int MaxAttempts { get; init; } = 5;

    public TimeSpan TaskTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Tasks running at once across the cluster.</summary>
    public int Parallelism { get; init; } = 16;
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
    private readonly HashSet<DeviceId> _avoid = [];

    /// <summary>A context this run holds on one device, with its address space.</summary>
    private sealed class Slot(DeviceContext context, AddressSpaceId space)
    {
        public DeviceContext Context { get; } = context;
        public AddressSpaceId Space { get; } = space;
        public DeviceId Device => Context.Device;
    }

    /// <summary>Where a buffer's current value lives.</summary>
    private sealed class Holding(Slot slot, BufferHandle handle, Iova iova, long size)
    {
        public Slot Slot { get; } = slot;
        public BufferHandle Handle { get; } = handle;
        public Iova Iova { get; } = iova;
        public long Size { get; } = size;
        public ExportToken? Token { get; set; }
    }

    private sealed record Outcome(string Task, DeviceId Device, FabricError? Error, ImmutableArray<DeviceId> Involved);

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
                var needed = Needed();
                if (needed.Count == 0 && running.Count == 0)
                {
                    var outputs = await FetchOutputsAsync(cancel);
                    if (outputs is not null) return new JobRunResult(null, outputs);
                    continue; // a holder was lost while fetching: recompute
                }
                var devices = await client.ListDevicesAsync(cancel);
                foreach (var task in needed.Where(t => !running.ContainsKey(t) && Ready(t)).Take(Math.Max(0, options.Parallelism - running.Count)))
                {
                    var device = Place(task, devices, running.Keys);
                    if (device is null)
                        return Failed(new FabricError(ErrorCode.ENOMEM, $"task {task} fits on no device of the cluster now ({devices.Count} devices)"));
                    var attempt = _attempts[task] = _attempts.GetValueOrDefault(task) + 1;
                    events.TaskPlaced(task, device.Value, attempt);
                    running[task] = RunTaskAsync(_tasks[task], device.Value, attempt, cancel);
                }
                if (running.Count == 0)
                    return Failed(new FabricError(ErrorCode.EIO, $"job {spec.Name} cannot make progress: tasks {string.Join(", ", needed)} wait on inputs nothing will produce"));

                var finished = await Task.WhenAny(running.Values);
                var outcome = await finished;
                running.Remove(outcome.Task);
                if (outcome.Error is null) continue;
                var tries = _attempts[outcome.Task];
                if (!IsTransient(outcome.Error) || tries >= options.MaxAttempts)
                {
                    events.TaskFailed(outcome.Task, outcome.Device, tries, outcome.Error, willRetry: false);
                    return Failed(outcome.Error with { Message = $"task {outcome.Task} failed on {outcome.Device} (attempt {tries}): {outcome.Error.Message}" });
                }
                events.TaskFailed(outcome.Task, outcome.Device, tries, outcome.Error, willRetry: true);
                await ForgetLostAsync(outcome.Involved, outcome.Error.Message);
            }
        }
        finally
        {
            foreach (var task in running.Values) await task.ContinueWith(_ => { }, TaskScheduler.Default);
            foreach (var slot in _slots.Values) await slot.Context.DisposeAsync();
            _slots.Clear();
        }
    }

    private static JobRunResult Failed(FabricError error) => new(error, ImmutableDictionary<string, byte[]>.Empty);

    /// <summary>The tasks whose outputs are still needed: producers of missing results, and of missing inputs of those (lineage).</summary>
    private List<string> Needed()
    {
        var needed = new List<string>();
        var wanted = new Stack<string>(spec.Buffers.Where(b => b.Output && !_held.ContainsKey(b.Name)).Select(b => b.Name));
        var seen = new HashSet<string>();
        while (wanted.TryPop(out var buffer))
        {
            if (_held.ContainsKey(buffer) || _buffers[buffer].Init is not null) continue;
            var producer = _plan.Producer(buffer);
            if (producer is null || !seen.Add(producer)) continue;
            needed.Add(producer);
            foreach (var input in _plan.Task(producer).Inputs) wanted.Push(input);
        }
        return needed;
    }

    private bool Ready(string task) => _plan.Task(task).Inputs.All(b => _held.ContainsKey(b) || _buffers[b].Init is not null);

    private DeviceId? Place(string task, IReadOnlyList<DeviceInfo> devices, IEnumerable<string> running)
    {
        var spec = _tasks[task];
        var memory = _plan.Task(task).MemoryBytes;
        var local = new Dictionary<DeviceId, long>();
        foreach (var input in _plan.Task(task).Inputs)
            if (_held.TryGetValue(input, out var holding))
                local[holding.Slot.Device] = local.GetValueOrDefault(holding.Slot.Device) + holding.Size;
        var load = running.Select(t => _lastPlacement.GetValueOrDefault(t)).Where(d => d.Node is not null)
            .GroupBy(d => d).ToDictionary(g => g.Key, g => g.Count());
        var choice = Scheduler.Choose(new Scheduler.Demand(task, memory, local, spec.Needs.Node, spec.Needs.DeviceKind, load), devices, _avoid);
        if (choice is { } chosen) _lastPlacement[task] = chosen;
        return choice;
    }

    private readonly Dictionary<string, DeviceId> _lastPlacement = [];

    private async Task<Slot> SlotAsync(DeviceId device, CancellationToken cancel)
    {
        if (_slots.TryGetValue(device, out var slot) && slot.Context.IsUsable) return slot;
        var context = await client.OpenAsync(device, cancel);
        var space = await context.CreateAddressSpaceAsync(cancel);
        await context.AttachAsync(space, cancel);
        return _slots[device] = new Slot(context, space);
    }

    private async Task<Outcome> RunTaskAsync(TaskSpec task, DeviceId device, int attempt, CancellationToken cancel)
    {
        var involved = new HashSet<DeviceId> { device };
        var clock = Stopwatch.StartNew();
        var cleanup = new List<(BufferHandle Handle, Iova Iova, long Size)>();
        Slot? slot = null;
        try
        {
            slot = await SlotAsync(device, cancel);
            var iovas = new Dictionary<string, ulong>();
            var staging = new CommandBufferBuilder();
            foreach (var input in _plan.Task(task.Name).Inputs)
            {
                if (!_held.TryGetValue(input, out var holding))
                {
                    // A job input: made where it is first needed.
                    var data = BufferInit.Materialize(_buffers[input]);
                    var handle = await slot.Context.AllocateAsync(data.Length, cancel: cancel);
                    await slot.Context.WriteAsync(handle, 0, data, cancel);
                    var iova = await slot.Context.MapAsync(slot.Space, handle, Access.ReadWrite, cancel: cancel);
                    _held[input] = holding = new Holding(slot, handle, iova, data.Length);
                }
                involved.Add(holding.Slot.Device);
                if (holding.Slot == slot)
                {
                    iovas[input] = holding.Iova;
                    continue;
                }
                // Another device holds it: import it (P2P), and on another node copy it in first.
                holding.Token ??= (await holding.Slot.Context.ExportAsync(holding.Handle, Access.Read, cancel)).Token;
                var imported = await slot.Context.ImportAsync(holding.Token.Value, cancel);
                var importIova = await slot.Context.MapAsync(slot.Space, imported.Handle, Access.Read, cancel: cancel);
                cleanup.Add((imported.Handle, importIova, imported.Size));
                if (holding.Slot.Device.Node == device.Node)
                {
                    iovas[input] = importIova;
                    continue;
                }
                var local = await slot.Context.AllocateAsync(holding.Size, cancel: cancel);
                var localIova = await slot.Context.MapAsync(slot.Space, local, Access.ReadWrite, cancel: cancel);
                cleanup.Add((local, localIova, holding.Size));
                staging.Copy(localIova, importIova, (ulong)holding.Size);
                iovas[input] = localIova;
            }
            var outputs = new List<(string Name, BufferHandle Handle, Iova Iova, long Size)>();
            foreach (var output in _plan.Task(task.Name).Outputs)
            {
                var size = _buffers[output].Size;
                var handle = await slot.Context.AllocateAsync(size, cancel: cancel);
                var iova = await slot.Context.MapAsync(slot.Space, handle, Access.ReadWrite, cancel: cancel);
                outputs.Add((output, handle, iova, size));
                iovas[output] = iova;
            }
            var program = TaskCompiler.Compile(task, name => iovas[name], name => _buffers[name].Size);
            if (staging.Count > 0) await slot.Context.RunAsync(staging.Build(), options.TaskTimeout, cancel: cancel);
            await slot.Context.RunAsync(program, options.TaskTimeout, cancel: cancel);
            foreach (var (name, handle, iova, size) in outputs) _held[name] = new Holding(slot, handle, iova, size);
            events.TaskSucceeded(task.Name, device, attempt, clock.Elapsed);
            await ReleaseAsync(slot, cleanup, cancel);
            return new Outcome(task.Name, device, null, [.. involved]);
        }
        catch (FabricException e)
        {
            if (slot is not null) await ReleaseAsync(slot, cleanup, cancel);
            return new Outcome(task.Name, device, e.Error, [.. involved]);
        }
    }

    /// <summary>Imports and staging copies are dropped once the task has run; failures here change nothing that matters.</summary>
    private static async Task ReleaseAsync(Slot slot, List<(BufferHandle Handle, Iova Iova, long Size)> buffers, CancellationToken cancel)
    {
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
    /// After a transient failure: every device involved is probed; one that does not answer (its node lost, its context
    /// gone) is avoided from now on, and the buffers it held are forgotten — their producers run again (lineage).
    /// </summary>
    private async Task ForgetLostAsync(ImmutableArray<DeviceId> involved, string reason)
    {
        var lost = new List<string>();
        foreach (var device in involved)
        {
            if (!_slots.TryGetValue(device, out var slot)) continue;
            var alive = slot.Context.IsUsable;
            if (alive)
            {
                try { await slot.Context.GetInfoAsync().WaitAsync(TimeSpan.FromSeconds(5)); }
                catch (Exception e) when (e is FabricException or TimeoutException) { alive = false; }
            }
            if (alive) continue;
            _avoid.Add(device);
            _slots.Remove(device);
            foreach (var (name, _) in _held.Where(kv => kv.Value.Slot == slot).ToList())
            {
                _held.Remove(name);
                lost.Add(name);
            }
        }
        if (lost.Count > 0) events.BuffersLost([.. lost], reason);
    }

    /// <summary>Reads every output back from where it is held; null when a holder is gone (the caller recomputes).</summary>
    private async Task<ImmutableDictionary<string, byte[]>?> FetchOutputsAsync(CancellationToken cancel)
    {
        var outputs = ImmutableDictionary.CreateBuilder<string, byte[]>();
        foreach (var buffer in spec.Buffers.Where(b => b.Output))
        {
            var holding = _held[buffer.Name];
            try
            {
                outputs[buffer.Name] = await holding.Slot.Context.ReadAsync(holding.Handle, 0, checked((int)buffer.Size), cancel);
            }
            catch (FabricException e) when (IsTransient(e.Error))
            {
                await ForgetLostAsync([holding.Slot.Device], e.Error.Message);
                return null;
            }
        }
        return outputs.ToImmutable();
    }
}
