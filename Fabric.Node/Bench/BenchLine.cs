using System.Text.Json;
using System.Text.Json.Serialization;

namespace Fabric.Node.Bench;

/// <summary>One figure of a benchmark, printed as one JSON line on stdout (the contract of BENCH.md).</summary>
public sealed record BenchLine(
    [property: JsonPropertyName("metric")] string Metric,
    [property: JsonPropertyName("value")] double Value,
    [property: JsonPropertyName("unit")] string Unit,
    [property: JsonPropertyName("baseline")] double? Baseline = null,
    [property: JsonPropertyName("baseline_name")] string? BaselineName = null,
    [property: JsonPropertyName("goal")] string? Goal = null)
{
    [JsonPropertyName("ratio")]
    public double? Ratio => Baseline is > 0 ? Math.Round(Value / Baseline.Value, 4) : null;

    private static readonly JsonSerializerOptions Json = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => JsonSerializer.Serialize(this with { Value = Math.Round(Value, 3), Baseline = Baseline is { } b ? Math.Round(b, 3) : null }, Json);
}

/// <summary>Percentiles of a sample, by nearest rank.</summary>
public static class Percentiles
{
    public static double Of(IReadOnlyList<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];
}
