using System.Text.Json;
using System.Text.Json.Serialization;

namespace Fabric.Node.Chaos;

/// <summary>A broken promise: which invariant, about what, and what was seen.</summary>
public sealed record Violation(string Invariant, string Subject, string Detail);

/// <summary>
/// One fault as it happened. <see cref="RecoverySeconds"/>: from the fault to the first completion of a task it
/// interrupted (running on a victim, holding results on one, or of a job whose run was on one), elsewhere. For a link
/// fault, <see cref="Kept"/> and <see cref="Downed"/>: the side the split-brain resolver kept (its nodes' processes ran
/// on) and the nodes downed or restarted; null for kills and freezes.
/// </summary>
public sealed record FaultRecord(
    int Number,
    string Kind,
    string[] Victims,
    string Job,
    double JobProgress,
    double AtSeconds,
    double DownSeconds,
    double HealedSeconds,
    string Role,
    int InterruptedTasks,
    double? RecoverySeconds,
    string? RecoveredBy,
    string[]? Kept = null,
    string[]? Downed = null);

public sealed record JobRecord(string Id, int Wave, string Status, int Tasks, int Runs, int Retries, int Recomputations, bool? Verified, double? Seconds);

/// <summary>A device at the end of the run against its state before any job.</summary>
public sealed record DeviceRecord(string Device, long MemoryUsed, int Allocations, int Contexts, int Exports, int Imports, int Waiters, int QueueDepth, bool AtBaseline);

/// <summary>Everything <c>fabric chaos</c> found; <see cref="Violations"/> empty means every invariant held.</summary>
public sealed record ChaosReport(
    int Seed,
    int Nodes,
    int Kills,
    int Freezes,
    double Seconds,
    FaultRecord[] Faults,
    JobRecord[] Jobs,
    DeviceRecord[] Devices,
    string[] InvariantsChecked,
    Violation[] Violations,
    string Replay,
    int Partitions = 0)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>The median recovery of faults whose victims ran tasks of a job (not a job's own run), if any.</summary>
    public double? MedianTaskNodeRecovery => Median(Faults.Where(f => f.Role == ChaosRecovery.TaskNode).Select(f => f.RecoverySeconds));

    public double? MedianRecovery => Median(Faults.Select(f => f.RecoverySeconds));

    public double? MaxRecovery => Faults.Select(f => f.RecoverySeconds).Where(s => s is not null).Max();

    private static double? Median(IEnumerable<double?> values)
    {
        var sorted = values.Where(v => v is not null).Select(v => v!.Value).Order().ToArray();
        if (sorted.Length == 0) return null;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static ChaosReport FromJson(string json) =>
        JsonSerializer.Deserialize<ChaosReport>(json, Json) ?? throw new JsonException("the chaos report is empty");
}
