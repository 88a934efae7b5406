using Fabric.Core;
using Fabric.Core.Jobs;

namespace Fabric.Tests.Jobs;

public sealed class JobJsonTests
{
    [Fact]
    public void A_built_job_survives_write_and_parse()
    {
        var original = new JobBuilder("round-trip")
            .Input("w", [1.5f, -2.25f, float.Epsilon, 0.1f])
            .RandomInput("x", 4, seed: ulong.MaxValue, scale: 0.3f)
            .Ramp("y", 4, scale: -1f / 3)
            .Zeros("z", 7)
            .Buffer("p", 16)
            .Output("q", 16)
            .Output("f", 7)
            .Output("m", 4)
            .MarkOutput("w")
            .Task("t1", t => t.Axpy("p", "x", "y", 1e-7f), new TaskNeeds(123, "node-a", "gpu"))
            .Task("t2", t => t.Add("q", "p", "w").Scale("q", "q", float.NaN))
            .Task("t3", t => t.Fill("f", 0xDEADBEEF).Copy("f", "z"))
            .Task("t4", t => t.MatMul("m", "w", "q", 1, 1, 4))
            .Build();

        var json = JobJson.Write(original);
        var back = JobJson.Parse(json);

        Assert.Equal(json, JobJson.Write(back));
        // The compact form a program sends to a gateway reads back into the same spec, and is the same JSON without its layout.
        var compact = JobJson.WriteCompact(original);
        Assert.Equal(json, JobJson.Write(JobJson.Parse(compact)));
        Assert.Equal(System.Text.RegularExpressions.Regex.Replace(json, "\\s+(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", ""), System.Text.Encoding.UTF8.GetString(compact));
        Assert.Equal(original.Name, back.Name);
        Assert.Equal(original.Buffers.Select(b => (b.Name, b.Size, b.Output, b.Init?.Kind, b.Init?.Seed, b.Init?.Scale)),
                     back.Buffers.Select(b => (b.Name, b.Size, b.Output, b.Init?.Kind, b.Init?.Seed, b.Init?.Scale)));
        Assert.Equal(original.Buffers[0].Init!.Data, back.Buffers[0].Init!.Data);
        Assert.Equal(original.Tasks.Select(t => t.Needs), back.Tasks.Select(t => t.Needs));
        Assert.Equal(original.Tasks.SelectMany(t => t.Steps), back.Tasks.SelectMany(t => t.Steps));
        Assert.True(float.IsNaN(back.Tasks[1].Steps[1].Alpha));
    }

    [Fact]
    public void Bytes_parse_as_the_text_does_with_or_without_a_byte_order_mark()
    {
        var json = JobJson.Write(new JobBuilder("bytes").RandomInput("x", 8, seed: 1).Output("y", 32).Task("t", t => t.Scale("y", "x", 2f)).Build());
        var utf8 = System.Text.Encoding.UTF8.GetBytes(json);

        Assert.Equal(json, JobJson.Write(JobJson.Parse(utf8)));
        Assert.Equal(json, JobJson.Write(JobJson.Parse((byte[])[0xEF, 0xBB, 0xBF, .. utf8])));
        var broken = Assert.Throws<FabricException>(() => JobJson.Parse((byte[])[.. utf8[..^1], 0xFF])); // not UTF-8
        Assert.Equal(ErrorCode.EINVAL, broken.Code);
        Assert.Contains("malformed", broken.Message);
    }

    [Fact]
    public void The_readme_example_is_the_three_stage_job()
    {
        var readme = File.ReadAllText(FindRepoFile("Fabric.Core/Jobs/README.md"));
        var start = readme.IndexOf("```jsonc", StringComparison.Ordinal) + "```jsonc".Length;
        var end = readme.IndexOf("```", start, StringComparison.Ordinal);

        var parsed = JobJson.Parse(readme[start..end]);

        Assert.Null(JobValidator.Validate(parsed, 1L << 30));
        Assert.Equal(JobJson.Write(JobSamples.ThreeStage()), JobJson.Write(parsed));
    }

    [Fact]
    public void Unsigned_fields_accept_hex_strings_and_kinds_ignore_case()
    {
        var spec = JobJson.Parse("""
            { "name": "j",
              "buffers": [ { "name": "x", "size": 8, "init": { "kind": "RandomFloats", "seed": "0xFFFFFFFFFFFFFFFF" } },
                           { "name": "y", "size": 8, "output": true } ],
              "tasks": [ { "name": "t", "steps": [ { "kernel": "fill", "dst": "y", "pattern": "0x44332211" } ],
                           "needs": null } ] }
            """);

        Assert.Equal(InitKind.RandomFloats, spec.Buffers[0].Init!.Kind);
        Assert.Equal(ulong.MaxValue, spec.Buffers[0].Init!.Seed);
        Assert.Equal(0x44332211u, spec.Tasks[0].Steps[0].Pattern);
        Assert.Equal(TaskNeeds.Any, spec.Tasks[0].Needs);
    }

    [Fact]
    public void Malformed_json_is_EINVAL_naming_the_line()
    {
        var error = Assert.Throws<FabricException>(() => JobJson.Parse("{\n  \"name\": \"j\",\n  \"buffers\": [ { \"name\": } ]\n}"));

        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Contains("line 3", error.Error.Message);
    }

    [Theory]
    [InlineData("""{ "name": "j", "buffers": [], "tasks": [ { "name": "t", "steps": [ { "kernel": "scale", "dst": "y", "alpha": "two" } ] } ] }""",
                "tasks[0] (task 't').steps[0].alpha must be a float32 number, not the string \"two\"")]
    [InlineData("""{ "name": "j", "buffers": [ { "name": "x", "size": 4, "int": {} } ], "tasks": [] }""",
                "buffers[0] (buffer 'x') has the unknown field 'int'")]
    [InlineData("""{ "name": "j", "buffers": [ { "name": "x" } ], "tasks": [] }""",
                "buffers[0] (buffer 'x') has no 'size'")]
    [InlineData("""{ "name": "j", "buffers": [ { "name": "x", "size": 4, "init": { "kind": "gauss" } } ], "tasks": [] }""",
                "buffers[0] (buffer 'x').init.kind is 'gauss'; known: zero, inline, randomFloats, ramp")]
    [InlineData("""{ "name": "j", "buffers": [], "tasks": [ { "name": "t", "steps": [ { "kernel": "matmul", "dst": "y", "m": -1 } ] } ] }""",
                "tasks[0] (task 't').steps[0].m must be a whole number from 0 to 4294967295")]
    [InlineData("""{ "name": "j", "buffers": [ { "name": "x", "size": 4, "init": { "kind": "inline", "data": "not base64!" } } ], "tasks": [] }""",
                "buffers[0] (buffer 'x').init.data must be a base64 string")]
    [InlineData("""[1, 2]""", "the job must be an object, not an array")]
    public void A_field_of_the_wrong_form_is_EINVAL_naming_the_field(string json, string fragment)
    {
        var error = Assert.Throws<FabricException>(() => JobJson.Parse(json));

        Assert.Equal(ErrorCode.EINVAL, error.Code);
        Assert.Contains(fragment, error.Error.Message);
    }

    internal static string FindRepoFile(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, relative);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"{relative} not found above {AppContext.BaseDirectory}");
    }
}
