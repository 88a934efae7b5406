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
    private readonly ImmutableDictionary<string, PlannedTask> _byName;
    private readonly ImmutableDictionary<string, ImmutableArray<string>> _consumers;

    private JobPlan(
        JobSpec spec,
        ImmutableArray<PlannedTask> order,
        ImmutableDictionary<string, string> producers,
        ImmutableDictionary<string, ImmutableArray<string>> consumers)
    {
        Spec = spec;
        Tasks = order;
        Producers = producers;
        _consumers = consumers;
        _byName = order.ToImmutableDictionary(t => t.Name, StringComparer.Ordinal);
        Stages = order.GroupBy(t => t.Stage).OrderBy(g => g.Key).Select(g => g.ToImmutableArray()).ToImmutableArray();
    }

    public JobSpec Spec { get; }

    /// <summary>Every task in a topological order: by stage, then in the order the job declares them.</summary>
    public ImmutableArray<PlannedTask> Tasks { get; }

    /// <summary>The tasks of each stage; stage 0 first.</summary>
    public ImmutableArray<ImmutableArray<PlannedTask>> Stages { get; }

    /// <summary>The task that writes each buffer; job inputs have none.</summary>
    public ImmutableDictionary<string, string> Producers { get; }

    public PlannedTask Task(string name) => _byName[name];

    /// <summary>The task that writes <paramref name="buffer"/>, or null for a job input.</summary>
    public string? Producer(string buffer) => Producers.GetValueOrDefault(buffer);

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

    private static JobPlan Make(JobSpec spec)
    {
        JobValidator.ThrowIfInvalid(spec);

        var flows = spec.Tasks.ToDictionary(t => t.Name, TaskFlow.Of, StringComparer.Ordinal);
        var producers = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var task in spec.Tasks)
            foreach (var output in flows[task.Name].Outputs) producers[output] = task.Name;

        var dependsOn = spec.Tasks.ToDictionary(
            t => t.Name,
            t => flows[t.Name].Inputs.Where(producers.ContainsKey).Select(b => producers[b]).Distinct().ToImmutableArray(),
            StringComparer.Ordinal);

        // Longest-path depth by Kahn's algorithm; the validator guarantees the graph is acyclic.
        var stage = new Dictionary<string, int>(StringComparer.Ordinal);
        var waiting = spec.Tasks.ToDictionary(t => t.Name, t => dependsOn[t.Name].Length, StringComparer.Ordinal);
        var dependents = spec.Tasks.SelectMany(t => dependsOn[t.Name].Select(d => (d, t.Name)))
            .ToLookup(x => x.d, x => x.Name, StringComparer.Ordinal);
        var ready = new Queue<string>(spec.Tasks.Where(t => waiting[t.Name] == 0).Select(t => t.Name));
        while (ready.Count > 0)
        {
            var task = ready.Dequeue();
            stage[task] = dependsOn[task].Select(d => stage[d] + 1).DefaultIfEmpty(0).Max();
            foreach (var next in dependents[task])
                if (--waiting[next] == 0) ready.Enqueue(next);
        }
        int StageOf(string task) => stage[task];

        var order = spec.Tasks
            .Select((task, index) => (task, index, stage: StageOf(task.Name)))
            .OrderBy(x => x.stage).ThenBy(x => x.index)
            .Select(x => new PlannedTask(
                x.task, x.stage, flows[x.task.Name].Inputs, flows[x.task.Name].Outputs, dependsOn[x.task.Name],
                JobValidator.MemoryNeed(spec, x.task)))
            .ToImmutableArray();

        var consumers = order
            .SelectMany(t => t.Inputs.Select(b => (buffer: b, task: t.Name)))
            .GroupBy(x => x.buffer, StringComparer.Ordinal)
            .ToImmutableDictionary(g => g.Key, g => g.Select(x => x.task).ToImmutableArray(), StringComparer.Ordinal);

        return new JobPlan(spec, order, producers.ToImmutable(), consumers);
    }
}
