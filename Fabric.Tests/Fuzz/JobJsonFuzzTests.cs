using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Tests.Jobs;
using Xunit.Abstractions;

namespace Fabric.Tests.Fuzz;

/// <summary>
/// CsCheck mutates valid job specs (the samples, the example file, <see cref="JobJson.Write"/> of builder specs) 12 000
/// times — values of the wrong type, huge and negative numbers, fields removed or unknown, unknown kernels, names
/// swapped for other names (cycles, dangling and duplicate names), elements duplicated, values nested deep, text cut or
/// spliced, invalid UTF-8 bytes — and feeds each to <see cref="JobJson.Parse(string)"/>, to
/// <see cref="JobJson.Parse(ReadOnlyMemory{byte})"/> and to <see cref="JobValidator"/>. Each is accepted or refused with
/// a FabricException / FabricError whose message is a sentence naming something of the input; no other exception,
/// and a refusal changes nothing (the reference spec still parses and validates the same). A failure prints CsCheck's
/// seed; set the environment variable CsCheck_Seed to it to replay.
/// </summary>
public sealed class JobJsonFuzzTests(ITestOutputHelper output)
{
    private const int Iterations = 12_000;
    internal const long LargestDevice = 16L << 20;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(30);

    private static readonly JsonDocumentOptions Lenient = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    internal static readonly string[] Seeds =
    [
        File.ReadAllText(JobJsonTests.FindRepoFile("examples/three-stage.job.json")),
        JobJson.Write(JobSamples.ThreeStage()),
        JobJson.Write(JobSamples.Diamond()),
        JobJson.Write(new JobBuilder("inline").Input("x", [1f, 2f, 3f, 4f]).Output("y", 16).Output("c", 4)
            .Task("t", t => t.Scale("y", "x", 3f).Checksum("c", "y"), new TaskNeeds(1 << 16, null, null)).Build()),
    ];

    internal enum Kind { WrongType, HugeNumber, NegativeSize, Remove, Unknown, Kernel, SwapName, Duplicate, Nest, Cut, Splice, BadUtf8 }

    internal sealed record Edit(Kind Kind, int A, int B);

    internal static readonly Gen<(int Seed, Edit[] Edits)> Specs = Gen.Select(Gen.Int[0, Seeds.Length - 1],
        Gen.Select(Gen.Enum<Kind>(), Gen.Int[0, int.MaxValue], Gen.Int[0, int.MaxValue], (k, a, b) => new Edit(k, a, b)).Array[1, 3]);

    private static readonly string[] WrongValues =
        ["\"text\"", "12", "-1", "0", "1.5", "true", "false", "null", "[]", "{}", "[1,2]", "{\"a\":1}", "\"\"", "\"0xZZ\"", "1e400"];

    private static readonly string[] HugeNumbers =
    [
        "1e400", "-1e400", "99999999999999999999999999", "-9223372036854775809", "9223372036854775807", "18446744073709551616",
        "4294967296", "\"0xffffffffffffffffffff\"", "\"0x7fffffffffffffff\"", "1e-400", "3.4028236e38", "-0", "2147483648",
    ];

    private static readonly string[] Kernels = ["axpy", "scale", "add", "reduce-sum", "checksum", "copy", "fill", "matmul", "AXPY", "", "rm -rf", "axpy\u0000", "ünïcode"];

    /// <summary>Every value in the tree with the way back to it.</summary>
    private static List<(JsonNode? Node, JsonNode Parent, string? Key, int Index)> Values(JsonNode root)
    {
        var all = new List<(JsonNode?, JsonNode, string?, int)>();
        void Walk(JsonNode node)
        {
            switch (node)
            {
                case JsonObject o:
                    foreach (var (key, child) in o.ToList())
                    {
                        all.Add((child, o, key, -1));
                        if (child is not null) Walk(child);
                    }
                    break;
                case JsonArray a:
                    for (var i = 0; i < a.Count; i++)
                    {
                        all.Add((a[i], a, null, i));
                        if (a[i] is { } child) Walk(child);
                    }
                    break;
            }
        }
        Walk(root);
        return all;
    }

    private static void Replace(JsonNode parent, string? key, int index, JsonNode? value)
    {
        if (parent is JsonObject o) o[key!] = value;
        else ((JsonArray)parent)[index] = value;
    }

    internal static byte[] Mutate(string seed, Edit[] edits)
    {
        var root = JsonNode.Parse(seed, documentOptions: Lenient)!;
        byte[]? bytes = null;
        foreach (var edit in edits)
        {
            if (bytes is not null)
            {
                bytes = MutateText(bytes, edit);
                continue;
            }
            var values = Values(root);
            if (values.Count == 0)
            {
                bytes = MutateText(Encoding.UTF8.GetBytes(root.ToJsonString()), edit with { Kind = Kind.Splice });
                continue;
            }
            var (node, parent, key, index) = values[edit.A % values.Count];
            switch (edit.Kind)
            {
                case Kind.WrongType:
                    Replace(parent, key, index, JsonNode.Parse(WrongValues[edit.B % WrongValues.Length]));
                    break;
                case Kind.HugeNumber:
                    {
                        // Numbers beyond double are only text: the node is marked and swapped in the text below.
                        var numbers = values.Where(v => v.Node is JsonValue value && value.GetValueKind() == JsonValueKind.Number).ToList();
                        var (_, p, k, i) = numbers.Count > 0 ? numbers[edit.A % numbers.Count] : (node, parent, key, index);
                        Replace(p, k, i, JsonValue.Create("@@huge@@"));
                        var text = root.ToJsonString().Replace("\"@@huge@@\"", HugeNumbers[edit.B % HugeNumbers.Length]);
                        bytes = Encoding.UTF8.GetBytes(text);
                        break;
                    }
                case Kind.NegativeSize:
                    {
                        var sizes = values.Where(v => v.Key is "size" or "count" or "memory" or "scale" or "seed" or "maxAttempts").ToList();
                        if (sizes.Count > 0)
                        {
                            var s = sizes[edit.A % sizes.Count];
                            Replace(s.Parent, s.Key, s.Index, JsonValue.Create(-(long)(edit.B % 5000) - 1));
                        }
                        break;
                    }
                case Kind.Remove:
                    if (parent is JsonObject o) o.Remove(key!);
                    else ((JsonArray)parent).RemoveAt(index);
                    break;
                case Kind.Unknown:
                    if ((node as JsonObject ?? parent as JsonObject) is { } target && !target.ContainsKey("bogus"))
                        target["bogus"] = edit.B % 2 == 0 ? 1 : "x";
                    break;
                case Kind.Kernel:
                    {
                        var kernels = values.Where(v => v.Key == "kernel").ToList();
                        if (kernels.Count > 0)
                        {
                            var s = kernels[edit.A % kernels.Count];
                            Replace(s.Parent, s.Key, s.Index, JsonValue.Create(Kernels[edit.B % Kernels.Length]));
                        }
                        break;
                    }
                case Kind.SwapName:
                    {
                        // Another string of the spec in place of this one: a task reading what it writes (a cycle), two buffers
                        // or tasks of one name, a step naming a buffer that is not there.
                        var strings = values.Where(v => v.Node is JsonValue value && value.GetValueKind() == JsonValueKind.String).ToList();
                        if (strings.Count > 1)
                        {
                            var s = strings[edit.A % strings.Count];
                            Replace(s.Parent, s.Key, s.Index, JsonValue.Create(strings[edit.B % strings.Count].Node!.GetValue<string>()));
                        }
                        break;
                    }
                case Kind.Duplicate:
                    {
                        var elements = values.Where(v => v.Parent is JsonArray).ToList();
                        if (elements.Count > 0)
                        {
                            var s = elements[edit.A % elements.Count];
                            ((JsonArray)s.Parent).Insert(s.Index, s.Node?.DeepClone());
                        }
                        break;
                    }
                case Kind.Nest:
                    {
                        // As text: deeper than System.Text.Json writes (the reader stops at 16, the writer at 64).
                        var depth = 1 + edit.B % 200;
                        var inner = node?.ToJsonString() ?? "null";
                        Replace(parent, key, index, JsonValue.Create("@@nest@@"));
                        var open = string.Concat(Enumerable.Range(0, depth).Select(d => d % 2 == 0 ? "[" : "{\"n\":"));
                        var close = string.Concat(Enumerable.Range(0, depth).Reverse().Select(d => d % 2 == 0 ? "]" : "}"));
                        bytes = Encoding.UTF8.GetBytes(root.ToJsonString().Replace("\"@@nest@@\"", open + inner + close));
                        break;
                    }
                default:
                    bytes = MutateText(Encoding.UTF8.GetBytes(root.ToJsonString()), edit);
                    break;
            }
        }
        return bytes ?? Encoding.UTF8.GetBytes(edits[0].A % 2 == 0 ? root.ToJsonString() : root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static readonly byte[][] BadUtf8 = [[0xFF], [0xC0, 0x80], [0x80], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFE, 0xFF], [0xEF, 0xBB, 0xBF]];
    private static readonly string[] Splices = ["{", "}", "[", "]", ",", ":", "\"", "\\", "\\u00", "/*", "//", "\n", "\u0000", "\"name\":\"x\",", "null", "1e999"];

    private static byte[] MutateText(byte[] bytes, Edit edit)
    {
        var at = edit.A % (bytes.Length + 1);
        switch (edit.Kind)
        {
            case Kind.Cut:
                var length = Math.Min(bytes.Length - at, edit.B % 40);
                return edit.B % 3 == 0 ? bytes[..at] : [.. bytes[..at], .. bytes[(at + length)..]];
            case Kind.BadUtf8:
                {
                    // Mostly inside a string, where the bytes survive the tokenizer longest.
                    var quotes = Enumerable.Range(0, bytes.Length).Where(i => bytes[i] == (byte)'"').ToList();
                    if (quotes.Count > 0 && edit.B % 4 != 0) at = quotes[edit.A % quotes.Count] + 1;
                    return [.. bytes[..at], .. BadUtf8[edit.B % BadUtf8.Length], .. bytes[at..]];
                }
            default:
                return [.. bytes[..at], .. Encoding.UTF8.GetBytes(Splices[edit.B % Splices.Length]), .. bytes[at..]];
        }
    }

    [Fact]
    public async Task Mutated_specs_are_accepted_or_refused_with_a_sentence_never_another_exception()
    {
        var reference = JobJson.Parse(Seeds[1]);
        Assert.Null(JobValidator.Validate(reference, LargestDevice));
        int parsedCount = 0, syntax = 0, refusedByParser = 0, refusedByValidator = 0, valid = 0;
        var clock = Stopwatch.StartNew();

        await Task.Run(() => Specs.Sample((seed, edits) =>
        {
            var bytes = Mutate(Seeds[seed], edits);
            var text = Encoding.UTF8.GetString(bytes);
            var (spec, fromBytes) = Parse(() => JobJson.Parse(bytes.AsMemory()), text);
            var (specFromText, fromText) = Parse(() => JobJson.Parse(text), text);
            if (Utf8IsValid(bytes))
            {
                // The same text read from its bytes or as a string: the same answer.
                Assert.Equal(fromBytes?.Message, fromText?.Message);
                Assert.Equal(spec is null, specFromText is null);
            }
            if (spec is null)
            {
                Interlocked.Increment(ref refusedByParser);
                if (fromBytes!.Message.StartsWith("the job JSON is", StringComparison.Ordinal)) Interlocked.Increment(ref syntax);
                // A refusal changes nothing: the reference spec still reads and validates.
                Assert.Null(JobValidator.Validate(JobJson.Parse(Seeds[1]), LargestDevice));
                return;
            }
            Interlocked.Increment(ref parsedCount);
            FabricError? error;
            try { error = JobValidator.Validate(spec, LargestDevice); }
            catch (Exception e) { throw new Xunit.Sdk.XunitException($"JobValidator.Validate threw {e.GetType().Name} on {text}: {e}"); }
            if (error is null)
            {
                Interlocked.Increment(ref valid);
                JobValidator.ThrowIfInvalid(spec, LargestDevice);
                // An accepted spec is one the writer can write and the reader read back to the same answer.
                Assert.Null(JobValidator.Validate(JobJson.Parse(JobJson.Write(spec)), LargestDevice));
                return;
            }
            Interlocked.Increment(ref refusedByValidator);
            AssertSentence(error, text);
            var thrown = Assert.Throws<FabricException>(() => JobValidator.ThrowIfInvalid(spec, LargestDevice));
            Assert.Equal(error, thrown.Error);
            Assert.Equal(error, JobValidator.Validate(spec, LargestDevice)); // the same answer again
            Assert.Null(JobValidator.Validate(reference, LargestDevice));
        }, iter: Iterations, writeLine: output.WriteLine, print: t => Encoding.UTF8.GetString(Mutate(Seeds[t.Item1], t.Item2)))).WaitAsync(Budget * 3);

        output.WriteLine($"{refusedByParser} refused by the parser ({syntax} as malformed JSON), {refusedByValidator} by the validator, {valid} valid, " +
                         $"in {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(clock.Elapsed < Budget, $"{Iterations} specs took {clock.Elapsed.TotalSeconds:0.0} s, over the budget of {Budget.TotalSeconds} s");
        Assert.Equal(Iterations, refusedByParser + parsedCount);
        Assert.Equal(parsedCount, refusedByValidator + valid);
        // Every layer is reached: syntax errors, field errors, validation errors, and specs that survive their mutation.
        Assert.True(syntax > Iterations / 20, $"only {syntax} malformed");
        Assert.True(refusedByParser - syntax > Iterations / 20, $"only {refusedByParser - syntax} refused for their fields");
        Assert.True(refusedByValidator > Iterations / 50, $"only {refusedByValidator} refused by the validator");
        Assert.True(valid > Iterations / 50, $"only {valid} valid");
    }

    [Fact]
    public void Invalid_utf8_inside_a_name_is_EINVAL_naming_its_line_and_column()
    {
        // Found by the sample above: the reader let it through, and reading the name threw InvalidOperationException.
        byte[] json = [.. "{\n  \"name\": \"ab"u8, 0xC3, 0x28, .. "\",\n  \"buffers\": [], \"tasks\": []\n}"u8];

        var refused = Assert.Throws<FabricException>(() => JobJson.Parse(json.AsMemory()));

        Assert.Equal(ErrorCode.EINVAL, refused.Code);
        Assert.Equal("the job JSON is malformed at line 2, column 14: byte 15 is not UTF-8 (save the file as UTF-8)", refused.Error.Message);
    }

    /// <summary>The spec, or the refusal's error; any exception but a FabricException fails the sample.</summary>
    private static (JobSpec? Spec, FabricError? Error) Parse(Func<JobSpec> parse, string text)
    {
        try
        {
            return (parse(), null);
        }
        catch (FabricException e)
        {
            Assert.Equal(ErrorCode.EINVAL, e.Code);
            AssertSentence(e.Error, text);
            return (null, e.Error);
        }
        catch (Exception e)
        {
            throw new Xunit.Sdk.XunitException($"JobJson.Parse threw {e.GetType().Name} instead of a FabricException on {text}: {e}");
        }
    }

    /// <summary>A sentence that names something: a line and column of the text, a quoted 'name', the job itself (its root), or a word that the input holds as a name or field.</summary>
    private static void AssertSentence(FabricError error, string text)
    {
        // Syntax and encoding errors name the place in the text; the others a field path or a name.
        var message = error.Message;
        Assert.False(string.IsNullOrWhiteSpace(message), $"{error.Code} without a sentence for {text}");
        Assert.True(message.Length >= 12 && message.Contains(' '), $"'{message}' is not a sentence");
        var words = message.Split([' ', '\'', '"', '.', ',', ';', ':', '(', ')', '[', ']', '{', '}'], StringSplitOptions.RemoveEmptyEntries);
        var names = System.Text.RegularExpressions.Regex.IsMatch(message, @" at line \d+, column \d+|'[^' ]+'|^the job (must|has|is) ") || words.Any(w => w.Length > 0 && text.Contains($"\"{w}\"", StringComparison.Ordinal));
        Assert.True(names, $"'{message}' names nothing of its input: {text}");
    }

    private static bool Utf8IsValid(byte[] bytes) => System.Text.Unicode.Utf8.IsValid(bytes);
}
