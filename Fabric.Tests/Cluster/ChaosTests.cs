using Fabric.Node.Chaos;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// <c>fabric chaos</c> run as a user runs it (its own node processes, SIGKILLs, restarts, a freeze), with a fixed seed;
/// the report it writes must show every invariant held. A broken promise (a leaked buffer, a job run twice, a wrong
/// result) makes the command exit 1 and these tests fail.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ChaosTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _report = Path.Combine(Path.GetTempPath(), $"fabric-chaos-{Guid.NewGuid():N}.json");

    private async Task<(int Exit, ChaosReport Report)> RunAsync(params string[] arguments) => (await RunProcessAsync(arguments)).Result;

    private async Task<((int Exit, ChaosReport Report) Result, int Pid)> RunProcessAsync(params string[] arguments)
    {
        // Its own bound (--timeout) is shorter than the wait here: a hang shows as a violation in the report.
        using var chaos = FabricProcess.Start("fabric chaos", ["chaos", .. arguments, "--timeout", "6", "--report", _report]);
        int exit;
        try
        {
            exit = await chaos.WaitForExitAsync(TimeSpan.FromMinutes(10));
        }
        finally
        {
            output.WriteLine(chaos.Output);
        }
        Assert.True(File.Exists(_report), $"fabric chaos exited {exit} without a report:\n{chaos.Output}");
        var report = ChaosReport.FromJson(await File.ReadAllTextAsync(_report));
        Assert.Contains("replay with: fabric chaos --seed", chaos.Output);
        return ((exit, report), chaos.Id);
    }

    private static void AssertEveryInvariantHeld(int exit, ChaosReport report, int kills, int freezes, int partitions = 0)
    {
        Assert.True(report.Violations.Length == 0, string.Join("\n", report.Violations.Select(v => $"{v.Invariant} {v.Subject}: {v.Detail}")));
        Assert.Equal(0, exit);
        Assert.Equal(ChaosInvariants.For(partitions > 0), report.InvariantsChecked);
        Assert.Equal(kills, report.Kills);
        Assert.Equal(freezes, report.Freezes);
        Assert.Equal(partitions, report.Partitions);
        Assert.Equal(kills + freezes + partitions, report.Faults.Length);
        Assert.All(report.Faults, f =>
        {
            Assert.True(f.RecoverySeconds is >= 0, $"fault {f.Number} on {string.Join(", ", f.Victims)} has no recovery time");
            // Work the fault interrupted cannot finish elsewhere before the loss is noticed; with nothing interrupted,
            // another task may complete within the same millisecond.
            if (f.Role is ChaosRecovery.TaskNode or ChaosRecovery.JobNode)
                Assert.True(f.RecoverySeconds > 0, $"fault {f.Number} ({f.Role}) recovered in no time");
        });
        Assert.All(report.Jobs, j =>
        {
            Assert.Equal("Completed", j.Status);
            Assert.True(j.Verified, $"{j.Id} was not verified against the host reference");
        });
        Assert.NotEmpty(report.Devices);
        Assert.All(report.Devices, d =>
        {
            Assert.True(d.AtBaseline, $"{d.Device} is not at its baseline");
            Assert.Equal(0, d.MemoryUsed);
            Assert.Equal(0, d.Contexts);
            Assert.Equal(0, d.Exports);
            Assert.Equal(0, d.Waiters);
        });
    }

    [Fact]
    public async Task Three_nodes_two_kills_every_job_completes_once_with_the_right_result_and_nothing_leaks()
    {
        var (exit, report) = await RunAsync("--seed", "1", "--nodes", "3", "--kills", "2");

        AssertEveryInvariantHeld(exit, report, kills: 2, freezes: 0);
        Assert.Equal(3, report.Devices.Length);
        Assert.Equal(6, report.Jobs.Length);
        Assert.Equal(1, report.Seed);
    }

    [Fact]
    public async Task Five_nodes_kills_and_a_freeze_every_job_completes_once_with_the_right_result_and_nothing_leaks()
    {
        var (exit, report) = await RunAsync("--seed", "5", "--nodes", "5", "--kills", "2", "--freeze", "--jobs-per-wave", "1");

        AssertEveryInvariantHeld(exit, report, kills: 2, freezes: 1);
        Assert.Equal(5, report.Devices.Length);
        Assert.Contains(report.Faults, f => f.Kind == "freeze");
    }

    [NetnsFact]
    public async Task Three_nodes_in_namespaces_one_cut_off_mid_job_the_majority_is_kept_the_node_comes_back_and_nothing_is_lost()
    {
        // --kills 1 with --partitions: the one fault is a cut (each partition kind comes first), of a node the seed picks.
        var ((exit, report), pid) = await RunProcessAsync("--seed", "11", "--nodes", "3", "--kills", "1", "--netns", "--partitions");

        AssertEveryInvariantHeld(exit, report, kills: 0, freezes: 0, partitions: 1);
        var cut = Assert.Single(report.Faults);
        Assert.Equal("cut", cut.Kind);
        var victim = Assert.Single(cut.Victims);
        Assert.InRange(cut.JobProgress, 0.15, 1.0); // struck mid-job (or as the job finished)
        // Held past detection and the resolver's wait: it decided, downing the cut-off node and keeping the two others.
        Assert.True(cut.DownSeconds >= ChaosPlan.PartitionSeconds, $"the link was down {cut.DownSeconds} s only");
        Assert.Equal(new[] { "n1", "n2", "n3" }.Where(n => n != victim), cut.Kept);
        Assert.Equal([victim], cut.Downed!);
        Assert.True(cut.HealedSeconds > cut.DownSeconds, "the cluster was whole before the link was healed");
        Assert.Equal(3, report.Devices.Length); // the node came back (a new member) and its device is at baseline too
        // Nothing of the run's network is left: its namespaces and bridges are named after its process.
        var left = await NetworkLabTests.Ip("netns", "list") + await NetworkLabTests.Ip("-o", "link", "show", "type", "bridge");
        Assert.DoesNotContain($"fabric-{pid}", left);
    }

    [Fact]
    public async Task Partitions_without_netns_exit_2_with_a_sentence()
    {
        using var chaos = FabricProcess.Start("fabric chaos", "chaos", "--partitions", "--kills", "2");

        Assert.Equal(2, await chaos.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("--partitions needs --netns", chaos.Output);
    }

    [Fact]
    public async Task Bad_options_exit_2_with_a_sentence_and_start_nothing()
    {
        using var chaos = FabricProcess.Start("fabric chaos", "chaos", "--nodes", "2");

        var exit = await chaos.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, exit);
        Assert.Contains("--nodes 2: chaos needs 3 to 9 nodes", chaos.Output);
        Assert.False(File.Exists(_report));
    }

    public void Dispose()
    {
        if (File.Exists(_report)) File.Delete(_report);
    }
}
