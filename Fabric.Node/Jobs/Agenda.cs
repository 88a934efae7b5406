using Fabric.Core.Jobs;

namespace Fabric.Node.Jobs;

/// <summary>
/// The tasks a run still has to run, in the order its lineage found them: the producers of the job's outputs not held
/// yet, then the producers of their inputs not held, and so on back to the job's inputs (which are made, not produced).
/// Worked out once, then kept as tasks succeed (<see cref="Done"/>, O(1)); worked out again when held buffers are lost.
/// Recomputing it after every task would make a wide job quadratic in its tasks. Pure but for <see cref="Done"/>.
/// </summary>
public sealed class Agenda
{
    private readonly LinkedList<string> _order = new();
    private readonly Dictionary<string, LinkedListNode<string>> _nodes = [];

    private Agenda(IEnumerable<string> tasks)
    {
        foreach (var task in tasks) _nodes[task] = _order.AddLast(task);
    }

    /// <summary>The tasks of <paramref name="plan"/> whose outputs are still needed, given which buffers are <paramref name="held"/>.</summary>
    public static Agenda Of(JobPlan plan, Func<string, bool> held)
    {
        var needed = new List<string>();
        var wanted = new Stack<string>(plan.Spec.Buffers.Where(b => b.Output && !held(b.Name)).Select(b => b.Name));
        var seen = new HashSet<string>();
        while (wanted.TryPop(out var buffer))
        {
            if (held(buffer) || plan.Spec.Buffer(buffer) is { Init: not null }) continue;
            var producer = plan.Producer(buffer);
            if (producer is null || !seen.Add(producer)) continue;
            needed.Add(producer);
            foreach (var input in plan.Task(producer).Inputs) wanted.Push(input);
        }
        return new Agenda(needed);
    }

    public int Count => _order.Count;
    public IEnumerable<string> InOrder => _order;
    public bool Contains(string task) => _nodes.ContainsKey(task);

    /// <summary>The task succeeded and its outputs are held: it leaves the agenda.</summary>
    public void Done(string task)
    {
        if (_nodes.Remove(task, out var node)) _order.Remove(node);
    }
}
