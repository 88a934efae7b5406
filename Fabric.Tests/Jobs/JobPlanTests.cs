using Fabric.Core;
using Fabric.Core.Jobs;

namespace Fabric.Tests.Jobs;

public sealed class JobPlanTests
{
    [Fact]
    public void A_diamond_runs_in_three_stages()
    {
        var plan = JobPlan.Of(JobSamples.Diamond());

        Assert.Equal("top | left, right | bottom", StagesOf(plan));
        Assert.Equal(["top", "left", "right", "bottom"], plan.Tasks.Select(t => t.Name));
        Assert.Equal(["left", "right"], plan.Task("bottom").DependsOn.ToArray());
        Assert.Equal(["top"], plan.Task("left").DependsOn.ToArray());
        Assert.Empty(plan.Task("top").DependsOn);
        Assert.Equal(["left", "right"], plan.Consumers("t").ToArray());
        Assert.Equal(["top"], plan.Consumers("x").ToArray());
        Assert.Empty(plan.Consumers("d"));
        Assert.Equal("top", plan.Producer("t"));
        Assert.Null(plan.Producer("x"));
        Assert.Equal(Kernels.Add, plan.ProducerKernel("d"));
    }

    [Fact]
    public void Inputs_leave_out_what_a_task_writes_before_reading()
    {
        var plan = JobPlan.Of(new JobBuilder("j").Ramp("x", 4).Ramp("w", 4).Output("q", 16).Output("c", 4)
            .Task("t", t => t.Add("q", "x", "w").Scale("q", "q", 2).Checksum("c", "q"))
            .Build());

        var task = plan.Task("t");
        Assert.Equal(["x", "w"], task.Inputs.ToArray());
        Assert.Equal(["q", "c"], task.Outputs.ToArray());
        Assert.Equal(16 * 3 + 4, task.MemoryBytes);
        Assert.Equal(Kernels.Scale, plan.ProducerKernel("q"));
    }

    [Fact]
    public void The_three_stage_example_has_three_stages()
    {
        var plan = JobPlan.Of(JobSamples.ThreeStage());

        Assert.Equal("left, right | combine | summarize", StagesOf(plan));
        Assert.Equal(["s"], plan.Task("summarize").Inputs.ToArray());
        Assert.Equal(1 << 20, plan.Task("summarize").MemoryBytes);
    }

    [Fact]
    public void Planning_an_invalid_job_throws_the_validator_error()
    {
        var spec = new JobSpec("j", [new BufferSpec("y", 4, null, true)],
            [new TaskSpec("t", [KernelStep.Copy("y", "nope")], TaskNeeds.Any)]);

        var error = Assert.Throws<FabricException>(() => JobPlan.Of(spec));

        Assert.Equal(ErrorCode.ENOENT, error.Code);
    }

    [Fact]
    public void Every_producer_runs_before_its_consumers_in_random_dags()
    {
        var random = new Random(20_250_301);
        for (var iteration = 0; iteration < 300; iteration++)
        {
            var spec = RandomDag(random, iteration);
            Assert.Null(JobValidator.Validate(spec, long.MaxValue));

            var plan = JobPlan.Of(spec);

            var position = plan.Tasks.Select((t, i) => (t.Name, i)).ToDictionary(x => x.Name, x => x.i);
            Assert.Equal(spec.Tasks.Length, position.Count);
            Assert.Equal(plan.Tasks.Select(t => t.Name), plan.Stages.SelectMany(s => s).Select(t => t.Name));
            foreach (var task in plan.Tasks)
            {
                foreach (var input in task.Inputs)
                {
                    if (plan.Producer(input) is not { } producer) continue;
                    Assert.True(position[producer] < position[task.Name], $"iteration {iteration}: {producer} is planned after {task.Name}");
                    Assert.True(plan.Task(producer).Stage < task.Stage, $"iteration {iteration}: {producer} is not in an earlier stage than {task.Name}");
                    Assert.Contains(task.Name, plan.Consumers(input));
                }
                var expectedStage = task.DependsOn.Select(d => plan.Task(d).Stage + 1).DefaultIfEmpty(0).Max();
                Assert.Equal(expectedStage, task.Stage);
            }
        }
    }

    private static string StagesOf(JobPlan plan) =>
        string.Join(" | ", plan.Stages.Select(stage => string.Join(", ", stage.Select(t => t.Name))));

    /// <summary>
    /// Tasks each read one to three buffers made before them (inputs or earlier tasks' results) and write their own;
    /// some take a second step over their own result. Declared in shuffled order.
    /// </summary>
    private static JobSpec RandomDag(Random random, int iteration)
    {
        var builder = new JobBuilder($"dag-{iteration}");
        var available = new List<string>();
        var inputCount = random.Next(1, 4);
        for (var i = 0; i < inputCount; i++)
        {
            builder.RandomInput($"in{i}", 4, (ulong)i);
            available.Add($"in{i}");
        }

        var tasks = new List<(string Name, Action<TaskBuilder> Steps)>();
        var taskCount = random.Next(1, 25);
        for (var i = 0; i < taskCount; i++)
        {
            var a = available[random.Next(available.Count)];
            var b = available[random.Next(available.Count)];
            var result = $"r{i}";
            builder.Buffer(result, 16);
            if (random.Next(3) == 0)
            {
                var extra = $"e{i}";
                builder.Buffer(extra, 16);
                tasks.Add(($"t{i}", t => t.Add(result, a, b).Scale(extra, result, 2)));
                available.Add(extra);
            }
            else
            {
                tasks.Add(($"t{i}", t => t.Axpy(result, a, b, 0.5f)));
            }
            available.Add(result);
        }

        foreach (var (name, steps) in tasks.OrderBy(_ => random.Next()))
            builder.Task(name, steps);
        return builder.Build();
    }
}
