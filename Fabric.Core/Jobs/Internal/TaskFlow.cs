using System.Collections.Immutable;

namespace Fabric.Core.Jobs.Internal;

/// <summary>
/// What one task reads from outside and what it writes. Inputs are the buffers a step reads before any earlier step
/// of the same task wrote them; outputs are every buffer a step writes. Both keep the order of first use, and beside
/// each the index of the step that first reads (<see cref="InputSteps"/>) or writes (<see cref="OutputSteps"/>) it.
/// </summary>
internal sealed record TaskFlow(
    ImmutableArray<string> Inputs,
    ImmutableArray<int> InputSteps,
    ImmutableArray<string> Outputs,
    ImmutableArray<int> OutputSteps)
{
    /// <summary>
    /// The flow of <paramref name="task"/>, worked out once per instance: validating and planning a job ask for each
    /// task's several times, and a wide job has tens of thousands of tasks.
    /// </summary>
    public static TaskFlow Of(TaskSpec task) => Flows.GetValue(task, Make);

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TaskSpec, TaskFlow> Flows = new();

    // A task has a few steps: lists searched in place cost less than dictionaries built for each of tens of thousands of tasks.
    private static TaskFlow Make(TaskSpec task)
    {
        var inputs = ImmutableArray.CreateBuilder<string>();
        var inputSteps = ImmutableArray.CreateBuilder<int>();
        var outputs = ImmutableArray.CreateBuilder<string>();
        var outputSteps = ImmutableArray.CreateBuilder<int>();
        for (var i = 0; i < task.Steps.Length; i++)
        {
            var step = task.Steps[i];
            foreach (var source in step.Sources)
            {
                if (outputs.Contains(source) || inputs.Contains(source)) continue;
                inputs.Add(source);
                inputSteps.Add(i);
            }
            if (!outputs.Contains(step.Dst))
            {
                outputs.Add(step.Dst);
                outputSteps.Add(i);
            }
        }
        return new TaskFlow(inputs.DrainToImmutable(), inputSteps.DrainToImmutable(), outputs.DrainToImmutable(), outputSteps.DrainToImmutable());
    }

    /// <summary>The index of the step that first reads <paramref name="input"/> (one of <see cref="Inputs"/>).</summary>
    public int FirstRead(string input) => InputSteps[Inputs.IndexOf(input)];

    /// <summary>The index of the step that first writes <paramref name="output"/> (one of <see cref="Outputs"/>).</summary>
    public int FirstWrite(string output) => OutputSteps[Outputs.IndexOf(output)];
}
