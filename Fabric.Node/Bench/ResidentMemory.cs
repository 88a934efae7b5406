namespace Fabric.Node.Bench;

/// <summary>A process's resident memory as Linux counts it (<c>/proc/PID/status</c>): now, and its peak since the last reset.</summary>
public static class ResidentMemory
{
    /// <summary>Resets the peak (VmHWM) of <paramref name="pid"/> to what it holds now (<c>clear_refs</c> 5) → that, in MiB.</summary>
    public static double ResetPeak(int pid)
    {
        File.WriteAllText($"/proc/{pid}/clear_refs", "5");
        return Read(pid, "VmRSS:");
    }

    /// <summary>The most <paramref name="pid"/> has held resident since it started or its peak was reset, in MiB.</summary>
    public static double Peak(int pid) => Read(pid, "VmHWM:");

    private static double Read(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal))
                   ?? throw new InvalidOperationException($"/proc/{pid}/status has no {field} line (not Linux?)");
        var kib = long.Parse(line[field.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        return kib / 1024.0;
    }
}
