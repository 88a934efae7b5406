using System.Collections.Immutable;

namespace Fabric.Core.Jobs.Internal;

/// <summary>
/// What one task reads from outside and what it writes. Inputs are the buffers a step reads before any earlier step
/// of the same task wrote them; outputs are every buffer a step writes. Both keep the order of first use.
/// </summary>
internal sealed record TaskFlow(
    ImmutableArray<string> Inputs,
    ImmutableArray<string> Outputs,
    ImmutableDictionary<string, int> FirstRead,
    ImmutableDictionary<string, int> FirstWrite)
{
    /// <summary>
    /// The flow of <paramref name="task"/>, worked out once per instance: validating and planning a job ask for each
    /// task's several times, and a wide job has tens of thousands of tasks.
    /// </summary>
    public static TaskFlow Of(TaskSpec task) => Flows.GetValue(task, Make);

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TaskSpec, TaskFlow> Flows = new();

    private static TaskFlow Make(TaskSpec task)
    {
        var inputs = ImmutableArray.CreateBuilder<string>();
        var outputs = ImmutableArray.CreateBuilder<string>();
        var firstRead = ImmutableDictionary.CreateBuilder<string, int>(StringComparer.Ordinal);
        var firstWrite = ImmutableDictionary.CreateBuilder<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < task.Steps.Length; i++)
        {
            var step = task.Steps[i];
            foreach (var source in step.Sources)
            {
                if (firstWrite.ContainsKey(source) || firstRead.ContainsKey(source)) continue;
                firstRead[source] = i;
                inputs.Add(source);
            }
            if (!firstWrite.ContainsKey(step.Dst))
            {
                firstWrite[step.Dst] = i;
                outputs.Add(step.Dst);
            }
        }
        return new TaskFlow(inputs.ToImmutable(), outputs.ToImmutable(), firstRead.ToImmutable(), firstWrite.ToImmutable());
    }

    /// <summary>Every distinct buffer the task touches.</summary>
    public IEnumerable<string> Touched => Inputs.Concat(Outputs).Distinct(StringComparer.Ordinal);
}
