using System.Collections.Immutable;
using Fabric.Core.Gateway;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Node.Chaos;
using Fabric.Node.Jobs;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Tests.Chaos;

/// <summary>The checks of a chaos run, fed histories and device states that do and do not keep the promises.</summary>
public sealed class ChaosInvariantsTests
{
    private static readonly ChaosJob Job = new("chaos-s1-w01-j1", 0, ChaosJobs.Create("chaos-s1-w01-j1", 5, parts: 2, n: 64));
    private static readonly DeviceId N1 = new("n1", 0);
    private static readonly DeviceId N2 = new("n2", 0);

    /// <summary>A history that could have happened: every task placed on n1 and completed there, one run.</summary>
    private static ImmutableArray<JournalEntry> GoodHistory()
    {
        var events = new List<IJobEvent> { new Submitted(Job.Id, Job.Spec, 1000), new RunStarted("akka.tcp://fabric@127.0.0.1:4053", 1001) };
        var at = 1002L;
        foreach (var task in Job.Spec.Tasks)
        {
            events.Add(new TaskPlaced(task.Name, N1, 1, at++));
            events.Add(new JobEvents.TaskCompleted(task.Name, N1, 1, 0.01, at++));
        }
        events.Add(new JobEvents.Completed([], at));
        return [.. events.Select((e, i) => new JournalEntry(i + 1, e))];
    }

    private static JobView ViewOf(ImmutableArray<JournalEntry> history)
    {
        var state = history.Aggregate(JobState.Empty(Job.Id), (s, e) => s.Apply(e.Event));
        return JobViews.Of(state);
    }

    private static ImmutableArray<JournalEntry> Renumbered(IEnumerable<IJobEvent> events) => [.. events.Select((e, i) => new JournalEntry(i + 1, e))];

    [Fact]
    public void A_history_that_could_have_happened_breaks_nothing()
    {
        var history = GoodHistory();
        var histories = ImmutableDictionary<string, ImmutableArray<JournalEntry>>.Empty.Add(Job.Id, history);

        Assert.Empty(ChaosInvariants.JournalConsistent(Job, history, ViewOf(history)));
        Assert.Empty(ChaosInvariants.RanExactlyOnce([Job], [Job.Id], histories));
        Assert.Empty(ChaosInvariants.JobsCompleted([Job], new Dictionary<string, JobView> { [Job.Id] = ViewOf(history) }));
    }

    [Fact]
    public void A_second_outcome_or_a_second_index_entry_breaks_exactly_once()
    {
        var history = GoodHistory();
        var twice = Renumbered(history.Select(e => e.Event).Append(new JobEvents.Completed([], 9999)));
        var histories = ImmutableDictionary<string, ImmutableArray<JournalEntry>>.Empty.Add(Job.Id, twice);

        var violations = ChaosInvariants.RanExactlyOnce([Job], [Job.Id, Job.Id, "stranger"], histories).ToList();

        Assert.Contains(violations, v => v.Subject == Job.Id && v.Detail.Contains("2 outcomes"));
        Assert.Contains(violations, v => v.Subject == Job.Id && v.Detail.Contains("listed 2 times"));
        Assert.Contains(violations, v => v.Subject == "stranger" && v.Detail.Contains("nobody submitted"));
        Assert.All(violations, v => Assert.Equal(ChaosInvariants.ExactlyOnce, v.Invariant));
    }

    [Fact]
    public void A_completion_without_a_placement_a_gap_or_a_double_first_completion_breaks_the_journal()
    {
        var events = GoodHistory().Select(e => e.Event).ToList();
        var task = Job.Spec.Tasks[0].Name;
        events.Insert(events.Count - 1, new JobEvents.TaskCompleted(task, N2, 7, 0.01, 5000));
        var history = Renumbered(events);
        var gapped = ImmutableArray.Create(history[0], history[1] with { Sequence = 3 });

        var violations = ChaosInvariants.JournalConsistent(Job, history, ViewOf(history)).Select(v => v.Detail).ToList();

        Assert.Contains(violations, d => d.Contains($"task {task} completed on {N2} (attempt 7) without being placed there"));
        Assert.Contains(violations, d => d.Contains($"task {task} has 2 first completions"));
        Assert.Contains(ChaosInvariants.JournalConsistent(Job, gapped, null), v => v.Detail.Contains("sequence numbers jump to 3"));
    }

    [Fact]
    public void A_view_that_disagrees_with_the_journal_or_a_completed_job_missing_a_task_breaks_the_journal()
    {
        var history = GoodHistory();
        var missing = Renumbered(history.Select(e => e.Event).Where(e => e is not JobEvents.TaskCompleted { Task: "sum" }));

        Assert.Contains(ChaosInvariants.JournalConsistent(Job, history, ViewOf(history) with { Runs = 2 }), v => v.Detail.Contains("shows 2 runs, the journal 1"));
        Assert.Contains(ChaosInvariants.JournalConsistent(Job, missing, null), v => v.Detail.Contains("without tasks sum ever completing"));
    }

    [Fact]
    public void A_failed_a_running_or_an_unknown_job_breaks_every_job_completed()
    {
        var view = ViewOf(GoodHistory());
        var other = Job with { Id = "chaos-s1-w01-j2" };
        var third = Job with { Id = "chaos-s1-w01-j3" };

        var violations = ChaosInvariants.JobsCompleted([Job, other, third], new Dictionary<string, JobView>
        {
            [Job.Id] = view with { Status = "Failed", Error = "ENODEV: gone" },
            [other.Id] = view with { JobId = other.Id, Status = "Running" },
        }).ToList();

        Assert.Equal(3, violations.Count);
        Assert.Contains(violations, v => v.Subject == Job.Id && v.Detail.Contains("ENODEV: gone"));
        Assert.Contains(violations, v => v.Subject == other.Id && v.Detail.Contains("hangs"));
        Assert.Contains(violations, v => v.Subject == third.Id && v.Detail.Contains("does not know"));
    }

    [Fact]
    public void Memory_contexts_exports_imports_or_waits_left_on_a_device_are_leaks_and_hanging_waits()
    {
        static DeviceInfo Device(DeviceId id, long used = 0, int allocations = 0, int contexts = 0, int exports = 0, int queued = 0, int waiters = 0, int imports = 0) =>
            new(id, "fabric-sim", 0, 4096, 4, 256L << 20, used, 256L << 20, 0, allocations, contexts, exports, queued, 0, 0, 0, 0, false, waiters, imports);
        var baseline = new Dictionary<string, DeviceInfo> { ["n1/dev0"] = Device(N1), ["n2/dev0"] = Device(N2) };

        Assert.Empty(ChaosInvariants.DevicesAtBaseline(baseline, [Device(N1), Device(N2)]));
        var violations = ChaosInvariants.DevicesAtBaseline(baseline, [Device(N1, used: 4096, allocations: 1, contexts: 1, imports: 3), Device(N2, exports: 1, waiters: 2)]).ToList();

        Assert.Contains(violations, v => v.Invariant == ChaosInvariants.NoLeaks && v.Subject == "n1/dev0" && v.Detail.Contains("4,096 bytes") && v.Detail.Contains("1 open contexts")
                                         && v.Detail.Contains("3 dma-buf imports"));
        Assert.Contains(violations, v => v.Invariant == ChaosInvariants.NoLeaks && v.Subject == "n2/dev0" && v.Detail.Contains("1 dma-buf exports"));
        Assert.Contains(violations, v => v.Invariant == ChaosInvariants.NoHangingWaits && v.Subject == "n2/dev0" && v.Detail.Contains("2 fence waits"));
    }

    [Fact]
    public void A_state_that_lacks_journal_rows_a_second_writer_added_breaks_state_equals_journal()
    {
        var history = GoodHistory();
        Assert.Empty(ChaosInvariants.StateEqualsJournal(Job.Id, history, ViewOf(history)));

        // A second incarnation wrote a run and a placement of its own, which the state it went on from never saw.
        var task = Job.Spec.Tasks[0].Name;
        var events = history.Select(e => e.Event).ToList();
        events.Insert(events.Count - 1, new RunStarted("akka.tcp://fabric@127.0.0.1:4054", 5000));
        events.Insert(events.Count - 1, new TaskPlaced(task, N2, 2, 5001));
        var journal = Renumbered(events);

        var violations = ChaosInvariants.StateEqualsJournal(Job.Id, journal, ViewOf(history)).ToList();

        Assert.All(violations, v => Assert.Equal(ChaosInvariants.StateIsJournal, v.Invariant));
        Assert.Contains(violations, v => v.Detail.StartsWith("events: the journal gives " + journal.Length));
        Assert.Contains(violations, v => v.Detail.StartsWith("runs:"));
        Assert.Contains(violations, v => v.Detail.StartsWith($"task {task} attempts: the journal gives 2, the job shows 1"));
    }
    private static ChaosFault Fault(FaultKind kind, string[] victims, string[]? peers = null) =>
        new(1, kind, 0, [.. victims], 0.3, TimeSpan.FromSeconds(11), [.. peers ?? []]);

    private static readonly string[] Five = ["n1", "n2", "n3", "n4", "n5"];

    [Theory]
    [InlineData(FaultKind.Split, "n1,n2", "n3,n4,n5")] // the majority kept
    [InlineData(FaultKind.Split, "n1,n2", "n1,n2")] // the other side kept whole: still one side (which one is the resolver's strategy)
    [InlineData(FaultKind.Cut, "n4", "n1,n2,n3,n5")]
    public void A_partition_that_kept_exactly_one_whole_side_keeps_the_promise(FaultKind kind, string victims, string kept)
    {
        Assert.Empty(ChaosInvariants.KeptOneSide(Fault(kind, victims.Split(',')), Five, kept.Split(',')));
    }

    [Theory]
    [InlineData(FaultKind.Split, "n1,n2", "n1,n3,n4,n5", "a split brain")]
    [InlineData(FaultKind.Cut, "n4", "", "every node was downed")]
    [InlineData(FaultKind.Split, "n1,n2", "n3,n4", "only part of a side")]
    public void Both_sides_kept_none_kept_or_part_of_a_side_breaks_the_promise(FaultKind kind, string victims, string kept, string why)
    {
        var violation = Assert.Single(ChaosInvariants.KeptOneSide(Fault(kind, victims.Split(',')), Five, kept.Split(',', StringSplitOptions.RemoveEmptyEntries)));

        Assert.Equal(ChaosInvariants.OneSideKept, violation.Invariant);
        Assert.Contains(why, violation.Detail);
        Assert.Contains($"{kind.ToString().ToLowerInvariant()} {victims.Replace(',', '+')}", violation.Subject);
    }

    [Fact]
    public void A_one_way_cut_must_keep_everyone_else_and_not_both_ends()
    {
        var fault = Fault(FaultKind.OneWay, ["n1"], ["n3"]);

        Assert.Empty(ChaosInvariants.KeptOneSide(fault, Five, ["n2", "n4", "n5"])); // both ends downed (indirectly connected)
        Assert.Empty(ChaosInvariants.KeptOneSide(fault, Five, ["n2", "n3", "n4", "n5"])); // one end downed
        Assert.Contains("could not reach each other", Assert.Single(ChaosInvariants.KeptOneSide(fault, Five, Five)).Detail);
        Assert.Contains("n4, which still reached everyone, did not stay", Assert.Single(ChaosInvariants.KeptOneSide(fault, Five, ["n2", "n5"])).Detail);
    }
}
