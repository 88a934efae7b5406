using Fabric.Node.Bench;
using Fabric.Node.Cli;
using Fabric.Node.Demo;
using Spectre.Console;

namespace Fabric.Tests.Node;

public sealed class DemoTests
{
    [Fact]
    public async Task Demo_passes_every_check_and_shows_memory_back_at_zero()
    {
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(text), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });

        var exit = await LocalDemo.RunAsync(console, CancellationToken.None);

        var output = text.ToString();
        Assert.True(exit == 0, output);
        Assert.DoesNotContain("✗", output);
        Assert.Contains("every result matched the host", output);
        Assert.Contains("device memory back at zero", output);
    }

    [Theory]
    [InlineData("demo")]
    [InlineData("demo --in-process")]
    [InlineData("chaos --seed 1 --nodes 3 --kills 10")]
    [InlineData("chaos --seed 5 --nodes 5 --kills 2 --freeze --jobs-per-wave 1 --report r.json --keep --timeout 10")]
    [InlineData("bench local")]
    [InlineData("bench local --quick")]
    [InlineData("bench remote --quick")]
    [InlineData("node --name n2 --port 4054 --http-port 5081 --seeds 127.0.0.1:4053")]
    [InlineData("devices --json --gateway http://127.0.0.1:5081")]
    [InlineData("nodes")]
    [InlineData("check --connect 127.0.0.1:4053 --bytes 1MiB --hold")]
    [InlineData("submit examples/three-stage.job.json --wait --gateway http://127.0.0.1:5081")]
    [InlineData("jobs --json")]
    [InlineData("job 20261124-000000-abcdef --output s --out s.bin")]
    [InlineData("bench p2p --quick")]
    [InlineData("bench jobs")]
    public void Cli_accepts_its_documented_commands(string line)
    {
        var result = FabricCli.Build().Parse(line);

        Assert.Empty(result.Errors);
    }

    [Fact]
    public void The_example_job_is_valid_and_the_reference_computes_its_outputs()
    {
        var path = Path.Combine(FindRepositoryRoot(), "examples", "three-stage.job.json");

        var spec = Fabric.Core.Jobs.JobJson.Parse(File.ReadAllText(path));
        var outputs = Fabric.Core.Jobs.JobReference.Evaluate(spec);

        Assert.Null(Fabric.Core.Jobs.JobValidator.Validate(spec, 256L << 20));
        Assert.Equal(3, Fabric.Core.Jobs.JobPlan.Of(spec).Stages.Length);
        Assert.All(spec.Buffers.Where(b => b.Output), b => Assert.Equal(b.Size, outputs[b.Name].Length));
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Fabric.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("Fabric.sln not found above the test binaries");
    }

    [Fact]
    public void Cli_rejects_an_unknown_command_with_an_error()
    {
        var result = FabricCli.Build().Parse("launch-missiles");

        Assert.NotEmpty(result.Errors);
    }

    [Fact]
    public void Bench_lines_follow_the_output_contract()
    {
        var line = new BenchLine("copy_GBps", 7.5, "GBps", 10, "memcpy", ">= 0.7x memcpy").ToJson();

        Assert.Equal("""{"metric":"copy_GBps","value":7.5,"unit":"GBps","baseline":10,"baseline_name":"memcpy","goal":">= 0.7x memcpy","ratio":0.75}""", line);
    }
}
