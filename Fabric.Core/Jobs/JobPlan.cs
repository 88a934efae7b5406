using System.Collections.Immutable;
using Fabric.Core.Jobs.Internal;

namespace Fabric.Core.Jobs;

/// <summary>
/// One task of a <see cref="JobPlan"/>: its <see cref="Inputs"/> (buffers it reads that it does not write first),
/// its <see cref="Outputs"/> (buffers it writes), the tasks it waits for and its <see cref="Stage"/>: 0 when it reads
/// only job inputs, otherwise one more than the deepest task it depends on.
/// </summary>
public sealed record PlannedTask(
    TaskSpec Task,
    int Stage,
    ImmutableArray<string> Inputs,
    ImmutableArray<string> Outputs,
    ImmutableArray<string> DependsOn,
    long MemoryBytes)
{
    public string Name => Task.Name;
}

/// <summary>
/// The order in which a valid job runs: tasks grouped into stages by longest-path depth, so every task of a stage
/// depends only on tasks of earlier stages and the tasks of one stage may run at once. Build it with <see cref="Of"/>.
/// </summary>
public sealed class JobPlan
{
    private readonly Dictionary<string, PlannedTask> _byName;
    private readonly Dictionary<string, ImmutableArray<string>> _consumers;
    private readonly Dictionary<string, string> _producers;

    private JobPlan(
        JobSpec spec,
        ImmutableArray<PlannedTask> order,
        Dictionary<string, string> producers,
        Dictionary<string, ImmutableArray<string>> consumers)
    {
        Spec = spec;
        Tasks = order;
        _producers = producers;
        _consumers = consumers;
        _byName = new Dictionary<string, PlannedTask>(order.Length, StringComparer.Ordinal);
        foreach (var task in order) _byName[task.Name] = task;
        var stages = ImmutableArray.CreateBuilder<ImmutableArray<PlannedTask>>();
        for (var from = 0; from < order.Length;)
        {
            var to = from;
            while (to < order.Length && order[to].Stage == order[from].Stage) to++;
            stages.Add(order[from..to]);
            from = to;
        }
        Stages = stages.DrainToImmutable();
    }

    public JobSpec Spec { get; }

    /// <summary>Every task in a topological order: by stage, then in the order the job declares them.</summary>
    public ImmutableArray<PlannedTask> Tasks { get; }

    /// <summary>The tasks of each stage; stage 0 first.</summary>
    public ImmutableArray<ImmutableArray<PlannedTask>> Stages { get; }

    /// <summary>The task that writes each buffer; job inputs have none.</summary>
    public IReadOnlyDictionary<string, string> Producers => _producers;

    public PlannedTask Task(string name) => _byName[name];

    /// <summary>The task that writes <paramref name="buffer"/>, or null for a job input.</summary>
    public string? Producer(string buffer) => _producers.GetValueOrDefault(buffer);

    /// <summary>The tasks that read <paramref name="buffer"/> as an input, in plan order.</summary>
    public ImmutableArray<string> Consumers(string buffer) => _consumers.GetValueOrDefault(buffer, []);

    /// <summary>
    /// The kernel of the last step that writes <paramref name="buffer"/> (for <see cref="JobReference.Matches"/>), or
    /// null for a job input.
    /// </summary>
    public string? ProducerKernel(string buffer) =>
        Producer(buffer) is { } task ? _byName[task].Task.Steps.Last(s => s.Dst == buffer).Kernel : null;

    /// <summary>
    /// Plans <paramref name="spec"/>; throws <see cref="FabricException"/> when it is not valid (memory is not checked).
    /// A spec is immutable: its plan is made once per instance (the job's state and its run share it).
    /// </summary>
    public static JobPlan Of(JobSpec spec) => Plans.GetValue(spec, Make);

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<JobSpec, JobPlan> Plans = new();

    // Plain dictionaries and arrays: a wide job plans tens of thousands of tasks, on the gateway and again on the job's node.
    private static JobPlan Make(JobSpec spec)
    {
        JobValidator.ThrowIfInvalid(spec);

        var tasks = spec.Tasks;
        var flows = new TaskFlow[tasks.Length];
        var producers = new Dictionary<string, string>(StringComparer.Ordinal);
        var indexOf = new Dictionary<string, int>(tasks.Length, StringComparer.Ordinal);
        for (var i = 0; i < tasks.Length; i++)
        {
            flows[i] = TaskFlow.Of(tasks[i]);
            indexOf[tasks[i].Name] = i;
            foreach (var output in flows[i].Outputs) producers[output] = tasks[i].Name;
        }

        // Each task's producers (distinct, in the order of its inputs), and the tasks that wait on each.
        var dependsOn = new ImmutableArray<string>[tasks.Length];
        var dependents = new List<int>?[tasks.Length];
        var waiting = new int[tasks.Length];
        for (var i = 0; i < tasks.Length; i++)
        {
            var producedBy = ImmutableArray.CreateBuilder<string>();
            foreach (var input in flows[i].Inputs)
                if (producers.TryGetValue(input, out var producer) && !producedBy.Contains(producer)) producedBy.Add(producer);
            dependsOn[i] = producedBy.DrainToImmutable();
            waiting[i] = dependsOn[i].Length;
            foreach (var producer in dependsOn[i]) (dependents[indexOf[producer]] ??= []).Add(i);
        }

        // Longest-path depth by Kahn's algorithm; the validator guarantees the graph is acyclic.
        var stage = new int[tasks.Length];
        var ready = new Queue<int>();
        for (var i = 0; i < tasks.Length; i++)
            if (waiting[i] == 0) ready.Enqueue(i);
        while (ready.Count > 0)
        {
            var task = ready.Dequeue();
            foreach (var producer in dependsOn[task]) stage[task] = Math.Max(stage[task], stage[indexOf[producer]] + 1);
            foreach (var next in dependents[task] ?? [])
                if (--waiting[next] == 0) ready.Enqueue(next);
        }

        // By stage, then in the order the job declares them (a stable sort).
        var order = Enumerable.Range(0, tasks.Length).OrderBy(i => stage[i])
            .Select(i => new PlannedTask(tasks[i], stage[i], flows[i].Inputs, flows[i].Outputs, dependsOn[i], JobValidator.MemoryNeed(spec, tasks[i])))
            .ToImmutableArray();

        var readers = new Dictionary<string, ImmutableArray<string>.Builder>(StringComparer.Ordinal);
        foreach (var task in order)
            foreach (var input in task.Inputs)
            {
                if (!readers.TryGetValue(input, out var list)) readers[input] = list = ImmutableArray.CreateBuilder<string>();
                list.Add(task.Name);
            }
        var consumers = new Dictionary<string, ImmutableArray<string>>(readers.Count, StringComparer.Ordinal);
        foreach (var (buffer, list) in readers) consumers[buffer] = list.DrainToImmutable();

        return new JobPlan(spec, order, producers, consumers);
    }
}
