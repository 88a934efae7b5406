namespace Fabric.Node.Chaos;

/// <summary>What <c>fabric chaos</c> is asked to do; <see cref="Problem"/> says what is wrong with it, if anything.</summary>
public sealed record ChaosOptions
{
    public const int MaxNodes = 9;

    /// <summary>Seeds the jobs and the fault schedule: the same seed gives the same run to replay.</summary>
    public int Seed { get; init; } = 1;

    public int Nodes { get; init; } = 3;

    /// <summary>SIGKILLs of nodes (each followed by a restart of the node); with <see cref="Partitions"/>, the faults drawn among kills and partitions.</summary>
    public int Kills { get; init; } = 3;

    /// <summary>Also freeze one node (SIGSTOP, then SIGCONT a few seconds later), as a partition would.</summary>
    public bool Freeze { get; init; }

    /// <summary>Each node in a network namespace of its own, on its own address (LocalCluster's namespaces; Linux, root).</summary>
    public bool Namespaces { get; init; }

    /// <summary>Faults drawn among kills and link faults (cut, split, one-way); needs <see cref="Namespaces"/>.</summary>
    public bool Partitions { get; init; }

    /// <summary>Jobs submitted before each fault (the ones the fault hits); one more wave runs after the last fault.</summary>
    public int JobsPerWave { get; init; } = 2;

    /// <summary>Memory of each node's device.</summary>
    public string DeviceMemory { get; init; } = "256MiB";

    /// <summary>The whole run's bound: past it, whatever has not finished is a violation.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Where to write the report as JSON (besides the table on the console).</summary>
    public string? ReportPath { get; init; }

    /// <summary>Keep the nodes' directory (logs, journal) after the run.</summary>
    public bool KeepFiles { get; init; }

    /// <summary>At most this many nodes are down at once: the others stay a majority.</summary>
    public int MaxDown => (Nodes - 1) / 2;

    public string? Problem() =>
        Nodes < 3 || Nodes > MaxNodes ? $"--nodes {Nodes}: chaos needs 3 to {MaxNodes} nodes (killing one of fewer than 3 would lose the majority)"
        : Kills < 0 || Kills > 100 ? $"--kills {Kills}: use 0 to 100"
        : JobsPerWave < 1 || JobsPerWave > 8 ? $"--jobs-per-wave {JobsPerWave}: use 1 to 8"
        : Timeout <= TimeSpan.Zero ? "--timeout must be positive"
        : Freeze && !OperatingSystem.IsLinux() ? "--freeze needs Linux (SIGSTOP/SIGCONT)"
        : Partitions && !Namespaces ? "--partitions needs --netns: a partition cuts the links between the nodes' network namespaces"
        : Partitions && Kills < 1 ? "--partitions draws the faults of --kills among kills and partitions: give --kills 1 or more"
        : Namespaces && Hosting.NetworkLab.Unavailable() is { } why ? $"--netns: {why}"
        : null;
}
