using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Fabric.Core.Jobs;

/// <summary>
/// The JSON form of a <see cref="JobSpec"/>, as a user writes it (format and example in
/// <c>Fabric.Core/Jobs/README.md</c>): camelCase fields, kernels by name, init kinds as strings, inline data in
/// base64; comments and trailing commas are allowed. <see cref="Parse"/> checks the form only; the job's meaning is
/// checked by <see cref="JobValidator"/>.
/// </summary>
public static class JobJson
{
    private static readonly JsonDocumentOptions ReadOptions = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        MaxDepth = 16,
    };

    /// <summary>
    /// Reads a job. Malformed JSON, a missing or unknown field, or a value of the wrong type is a
    /// <see cref="FabricException"/> (EINVAL) whose sentence says where: the line for syntax errors, the field path
    /// (<c>tasks[1].steps[0].alpha</c>) for the others.
    /// </summary>
    public static JobSpec Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        return Parse(Encoding.UTF8.GetBytes(json));
    }

    /// <summary>Reads a job from its UTF-8 bytes (a leading byte order mark is skipped), as <see cref="Parse(string)"/> does from text.</summary>
    public static JobSpec Parse(ReadOnlyMemory<byte> utf8)
    {
        if (utf8.Span.StartsWith("\uFEFF"u8)) utf8 = utf8[3..];
        // The reader checks the bytes between tokens but not inside strings: invalid UTF-8 in a name would surface
        // later as an InvalidOperationException from deep inside System.Text.Json.
        if (!System.Text.Unicode.Utf8.IsValid(utf8.Span)) throw InvalidUtf8(utf8.Span);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, ReadOptions);
        }
        catch (JsonException e)
        {
            var line = e.LineNumber is { } l ? l + 1 : 0;
            var column = e.BytePositionInLine is { } c ? c + 1 : 0;
            var reason = e.Message;
            var cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
            if (cut < 0) cut = reason.IndexOf(" Path:", StringComparison.Ordinal);
            if (cut > 0) reason = reason[..cut];
            throw Error($"the job JSON is malformed at line {line}, column {column}: {reason.TrimEnd('.', ' ')}");
        }
        using (document)
            return ReadJob(document.RootElement);
    }

    /// <summary>The job as indented JSON that <see cref="Parse"/> reads back into an equal spec; fields at their default are left out.</summary>
    public static string Write(JobSpec spec) => Encoding.UTF8.GetString(WriteUtf8(spec, indented: true));

    /// <summary>
    /// The job as compact UTF-8 JSON, as a program sends it to a gateway: the same fields as <see cref="Write"/>
    /// without the layout, about half the bytes for a wide job (less to send, and to parse on the node).
    /// </summary>
    public static byte[] WriteCompact(JobSpec spec) => WriteUtf8(spec, indented: false);

    private static byte[] WriteUtf8(JobSpec spec, bool indented)
    {
        ArgumentNullException.ThrowIfNull(spec);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = indented }))
        {
            writer.WriteStartObject();
            writer.WriteString("name", spec.Name);
            writer.WriteStartArray("buffers");
            foreach (var buffer in spec.Buffers.IsDefault ? [] : spec.Buffers) WriteBuffer(writer, buffer);
            writer.WriteEndArray();
            writer.WriteStartArray("tasks");
            foreach (var task in spec.Tasks.IsDefault ? [] : spec.Tasks) WriteTask(writer, task);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return stream.ToArray();
    }

    /// <summary>The JSON name of an init kind: <c>zero</c>, <c>inline</c>, <c>randomFloats</c>, <c>ramp</c>.</summary>
    public static string KindName(InitKind kind) => JsonNamingPolicy.CamelCase.ConvertName(kind.ToString());

    // ---- reading ----

    private static JobSpec ReadJob(JsonElement root)
    {
        var job = new Fields(root, () => "the job", ["name", "buffers", "tasks"]);
        var buffers = job.Array("buffers", required: true).Select((e, i) => ReadBuffer(e, () => $"buffers[{i}]")).ToImmutableArray();
        var tasks = job.Array("tasks", required: true).Select((e, i) => ReadTask(e, () => $"tasks[{i}]")).ToImmutableArray();
        return new JobSpec(job.String("name", required: true)!, buffers, tasks);
    }

    private static BufferSpec ReadBuffer(JsonElement element, Func<string> path)
    {
        var buffer = new Fields(element, path, ["name", "size", "init", "output"], "buffer");
        var name = buffer.String("name", required: true)!;
        var init = buffer.Object("init") is { } i ? ReadInit(i, () => buffer.Path + ".init") : null;
        return new BufferSpec(name, buffer.Long("size", required: true), init, buffer.Bool("output"));
    }

    private static BufferInit ReadInit(JsonElement element, Func<string> path)
    {
        var init = new Fields(element, path, ["kind", "data", "seed", "scale"]);
        var kindName = init.String("kind", required: true)!;
        var kind = Enum.GetValues<InitKind>().FirstOrDefault(k => string.Equals(KindName(k), kindName, StringComparison.OrdinalIgnoreCase), (InitKind)(-1));
        if (kind < 0)
            throw Error($"{init.Path}.kind is '{kindName}'; known: {string.Join(", ", Enum.GetValues<InitKind>().Select(KindName))}");
        return new BufferInit(kind, init.Base64("data"), init.Unsigned("seed", ulong.MaxValue), init.Float("scale"));
    }

    private static TaskSpec ReadTask(JsonElement element, Func<string> path)
    {
        var task = new Fields(element, path, ["name", "steps", "needs", "maxAttempts"], "task");
        var name = task.String("name", required: true)!;
        var steps = task.Array("steps", required: true).Select((e, i) => ReadStep(e, () => $"{task.Path}.steps[{i}]")).ToImmutableArray();
        var needs = TaskNeeds.Any;
        if (task.Object("needs") is { } n)
        {
            var fields = new Fields(n, () => task.Path + ".needs", ["memoryBytes", "node", "deviceKind", "prefer"]);
            needs = new TaskNeeds(fields.Long("memoryBytes"), fields.String("node"), fields.String("deviceKind"), fields.String("prefer"));
        }
        var maxAttempts = task.Long("maxAttempts");
        if (maxAttempts is < 0 or > TaskSpec.AttemptsLimit)
            throw Error($"{task.Path}.maxAttempts is {maxAttempts}; use 1 to {TaskSpec.AttemptsLimit}, or leave it out for the default");
        return new TaskSpec(name, steps, needs, (int)maxAttempts);
    }

    private static KernelStep ReadStep(JsonElement element, Func<string> path)
    {
        var step = new Fields(element, path, StepFields);
        return new KernelStep(
            step.String("kernel", required: true)!,
            step.String("dst", required: true)!,
            step.String("a"),
            step.String("b"),
            step.Float("alpha"),
            (uint)step.Unsigned("m", uint.MaxValue),
            (uint)step.Unsigned("n", uint.MaxValue),
            (uint)step.Unsigned("k", uint.MaxValue),
            (uint)step.Unsigned("pattern", uint.MaxValue));
    }

    private static readonly string[] StepFields = ["kernel", "dst", "a", "b", "alpha", "m", "n", "k", "pattern"];

    /// <summary>
    /// The fields of one JSON object, checked against the names it may have. Its path in the job (for error messages) is
    /// worked out only when a message needs it: a wide job has tens of thousands of objects, and nearly all are fine.
    /// </summary>
    private sealed class Fields
    {
        private readonly string[] _known;
        private readonly JsonElement[] _values; // by the index of the field's name in _known; Undefined when absent
        private readonly Func<string> _path;
        private readonly string? _kind;
        private readonly JsonElement _element;
        private string? _pathText;

        /// <summary>Reads an object at <paramref name="path"/>; a <paramref name="kind"/> (buffer, task) adds its name to the path.</summary>
        public Fields(JsonElement element, Func<string> path, string[] known, string? kind = null)
        {
            (_element, _path, _known, _kind) = (element, path, known, kind);
            _values = new JsonElement[known.Length];
            if (element.ValueKind != JsonValueKind.Object) throw Error($"{path()} must be an object, not {Describe(element)}");
            foreach (var property in element.EnumerateObject())
            {
                var index = 0;
                while (index < known.Length && !property.NameEquals(known[index])) index++;
                if (index == known.Length)
                    throw Error($"{Path} has the unknown field '{property.Name}'; known: {string.Join(", ", known)}");
                if (_values[index].ValueKind != JsonValueKind.Undefined)
                    throw Error($"{Path} has the field '{property.Name}' twice");
                _values[index] = property.Value;
            }
        }

        public string Path => _pathText ??= _kind is not null && _element.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String
            ? $"{_path()} ({_kind} '{Shorten(name.GetString()!)}')"
            : _path();

        private JsonElement? Get(string field, bool required)
        {
            var value = _values[System.Array.IndexOf(_known, field)];
            if (value.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null)) return value;
            if (required) throw Error($"{Path} has no '{field}'");
            return null;
        }

        public string? String(string field, bool required = false) => Get(field, required) switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } v => v.GetString(),
            { } v => throw Error($"{Path}.{field} must be a string, not {Describe(v)}"),
        };

        public bool Bool(string field) => Get(field, false) switch
        {
            null => false,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            { } v => throw Error($"{Path}.{field} must be true or false, not {Describe(v)}"),
        };

        public long Long(string field, bool required = false) => Get(field, required) switch
        {
            null => 0,
            { ValueKind: JsonValueKind.Number } v when v.TryGetInt64(out var n) => n,
            { } v => throw Error($"{Path}.{field} must be a whole number, not {Describe(v)}"),
        };

        /// <summary>A whole number up to <paramref name="max"/>, written as a number or as a string (decimal or <c>0x</c> hex).</summary>
        public ulong Unsigned(string field, ulong max)
        {
            var value = Get(field, false);
            if (value is null) return 0;
            ulong result = 0;
            var ok = value.Value.ValueKind switch
            {
                JsonValueKind.Number => value.Value.TryGetUInt64(out result),
                JsonValueKind.String => ParseUnsigned(value.Value.GetString()!, out result),
                _ => false,
            };
            if (!ok || result > max)
                throw Error($"{Path}.{field} must be a whole number from 0 to {max} (or a \"0x…\" string), not {Describe(value.Value)}");
            return result;
        }

        /// <summary>A float32, written as a number or as "NaN", "Infinity", "-Infinity".</summary>
        public float Float(string field)
        {
            var value = Get(field, false);
            if (value is null) return 0f;
            if (value.Value.ValueKind == JsonValueKind.Number && value.Value.TryGetSingle(out var number) && float.IsFinite(number))
                return number;
            if (value.Value.ValueKind == JsonValueKind.String &&
                value.Value.GetString() is "NaN" or "Infinity" or "-Infinity" &&
                float.TryParse(value.Value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var special))
                return special;
            throw Error($"{Path}.{field} must be a float32 number, not {Describe(value.Value)}");
        }

        public byte[]? Base64(string field) => Get(field, false) switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } v when v.TryGetBytesFromBase64(out var bytes) => bytes,
            { } v => throw Error($"{Path}.{field} must be a base64 string, not {Describe(v)}"),
        };

        public JsonElement? Object(string field) => Get(field, false);

        public IEnumerable<JsonElement> Array(string field, bool required)
        {
            var value = Get(field, required);
            if (value is null) return [];
            if (value.Value.ValueKind != JsonValueKind.Array) throw Error($"{Path}.{field} must be an array, not {Describe(value.Value)}");
            return value.Value.EnumerateArray().ToList();
        }

        private static bool ParseUnsigned(string text, out ulong value) =>
            text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
                : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{Shorten(value.GetString()!)}\"",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "null",
    };

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..37] + "...";

    private static FabricException Error(string message) => new(FabricError.Invalid(message));

    /// <summary>EINVAL naming the line, column and byte offset of the first byte that is not UTF-8.</summary>
    private static FabricException InvalidUtf8(ReadOnlySpan<byte> utf8)
    {
        int at = 0, line = 1, lineStart = 0;
        while (at < utf8.Length
               && System.Text.Rune.DecodeFromUtf8(utf8[at..], out _, out var consumed) == System.Buffers.OperationStatus.Done)
        {
            if (utf8[at] == (byte)'\n') (line, lineStart) = (line + 1, at + 1);
            at += consumed;
        }
        return Error($"the job JSON is malformed at line {line}, column {at - lineStart + 1}: byte {at} is not UTF-8 (save the file as UTF-8)");
    }

    // ---- writing ----

    private static void WriteBuffer(Utf8JsonWriter writer, BufferSpec buffer)
    {
        writer.WriteStartObject();
        writer.WriteString("name", buffer.Name);
        writer.WriteNumber("size", buffer.Size);
        if (buffer.Init is { } init)
        {
            writer.WriteStartObject("init");
            writer.WriteString("kind", KindName(init.Kind));
            if (init.Data is not null) writer.WriteBase64String("data", init.Data);
            if (init.Seed != 0) writer.WriteNumber("seed", init.Seed);
            WriteFloat(writer, "scale", init.Scale);
            writer.WriteEndObject();
        }
        if (buffer.Output) writer.WriteBoolean("output", true);
        writer.WriteEndObject();
    }

    private static void WriteTask(Utf8JsonWriter writer, TaskSpec task)
    {
        writer.WriteStartObject();
        writer.WriteString("name", task.Name);
        writer.WriteStartArray("steps");
        foreach (var step in task.Steps.IsDefault ? [] : task.Steps)
        {
            writer.WriteStartObject();
            writer.WriteString("kernel", step.Kernel);
            writer.WriteString("dst", step.Dst);
            if (step.A is not null) writer.WriteString("a", step.A);
            if (step.B is not null) writer.WriteString("b", step.B);
            WriteFloat(writer, "alpha", step.Alpha);
            if (step.M != 0) writer.WriteNumber("m", step.M);
            if (step.N != 0) writer.WriteNumber("n", step.N);
            if (step.K != 0) writer.WriteNumber("k", step.K);
            if (step.Pattern != 0) writer.WriteString("pattern", $"0x{step.Pattern:x8}");
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        if (task.Needs is { } needs && needs != TaskNeeds.Any)
        {
            writer.WriteStartObject("needs");
            if (needs.MemoryBytes != 0) writer.WriteNumber("memoryBytes", needs.MemoryBytes);
            if (needs.Node is not null) writer.WriteString("node", needs.Node);
            if (needs.DeviceKind is not null) writer.WriteString("deviceKind", needs.DeviceKind);
            if (needs.Prefer is not null) writer.WriteString("prefer", needs.Prefer);
            writer.WriteEndObject();
        }
        if (task.MaxAttempts != 0) writer.WriteNumber("maxAttempts", task.MaxAttempts);
        writer.WriteEndObject();
    }

    /// <summary>A float32 by its shortest round-trip text; NaN and infinities as strings; 0 left out.</summary>
    private static void WriteFloat(Utf8JsonWriter writer, string field, float value)
    {
        if (value == 0f && !float.IsNegative(value)) return;
        if (float.IsFinite(value)) writer.WriteNumber(field, value);
        else writer.WriteString(field, value.ToString(CultureInfo.InvariantCulture));
    }
}
