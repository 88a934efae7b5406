using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Node.Jobs;

namespace Fabric.Tests.Jobs;

/// <summary>The pure parts of a job's run: its agenda (what lineage says is still to run) and its retry policy.</summary>
public sealed class RunPartsTests
{
    /// <summary>x (input) → a → b → c (output), and d → e (output) beside them.</summary>
    private static JobPlan Chains() => JobPlan.Of(new JobBuilder("chains").RandomInput("x", 16, seed: 1)
        .Buffer("a", 64).Buffer("b", 64).Output("c", 64).Buffer("d", 64).Output("e", 64)
        .Task("make-a", t => t.Scale("a", "x", 2f))
        .Task("make-b", t => t.Scale("b", "a", 2f))
        .Task("make-c", t => t.Scale("c", "b", 2f))
        .Task("make-d", t => t.Scale("d", "x", 3f))
        .Task("make-e", t => t.Scale("e", "d", 3f))
        .Build());

    [Fact]
    public void With_nothing_held_every_producer_back_to_the_inputs_is_on_the_agenda_once()
    {
        var agenda = Agenda.Of(Chains(), _ => false);

        Assert.Equal(5, agenda.Count);
        Assert.Equal(["make-a", "make-b", "make-c", "make-d", "make-e"], agenda.InOrder.Order());
        Assert.Equal(agenda.Count, agenda.InOrder.Distinct().Count());
    }

    [Fact]
    public void A_held_buffer_cuts_the_lineage_behind_it_and_held_outputs_need_nothing()
    {
        var plan = Chains();

        Assert.Equal(["make-c", "make-d", "make-e"], Agenda.Of(plan, b => b == "b").InOrder.Order());
        Assert.Equal(["make-c"], Agenda.Of(plan, b => b is "b" or "e").InOrder);
        Assert.Equal(["make-d", "make-e"], Agenda.Of(plan, b => b is "b" or "c").InOrder.Order());
        Assert.Equal(0, Agenda.Of(plan, b => b is "c" or "e").Count);
    }

    [Fact]
    public void A_lost_intermediate_buffer_puts_back_only_what_is_needed_to_remake_the_missing_outputs()
    {
        // c was made, then its holder was lost together with b; a is still held elsewhere: make-b and make-c run again.
        var agenda = Agenda.Of(Chains(), b => b is "a" or "e");

        Assert.Equal(["make-b", "make-c"], agenda.InOrder.Order());
        Assert.False(agenda.Contains("make-a"));
    }

    [Fact]
    public void Done_takes_a_task_off_once_and_leaves_the_order_of_the_others()
    {
        var agenda = Agenda.Of(Chains(), _ => false);
        var before = agenda.InOrder.ToList();

        agenda.Done("make-b");
        agenda.Done("make-b");
        agenda.Done("no-such-task");

        Assert.Equal(4, agenda.Count);
        Assert.False(agenda.Contains("make-b"));
        Assert.Equal(before.Where(t => t != "make-b"), agenda.InOrder);
    }

    private static readonly JobRunOptions Options = new()
    {
        MaxAttempts = 3, MaxAttemptsOnNodeLoss = 6, Backoff = TimeSpan.FromMilliseconds(100), MaxBackoff = TimeSpan.FromMilliseconds(500),
    };

    private static FabricError Error(ErrorCode code) => new(code, $"{code} for the test");

    [Theory]
    [InlineData(ErrorCode.EINVAL)]
    [InlineData(ErrorCode.EFAULT)]
    [InlineData(ErrorCode.ECANCELED)]
    public void An_error_of_the_tasks_own_fails_the_job_at_the_first_attempt(ErrorCode code)
    {
        Assert.Equal(RetryPolicy.Decision.GiveUp, RetryPolicy.Decide(Error(code), attempts: 1, unexplained: 1, taskLimit: 0, Options));
        Assert.False(RetryPolicy.IsTransient(Error(code)));
    }

    [Fact]
    public void A_transient_failure_is_retried_after_a_wait_that_doubles_up_to_the_cap()
    {
        var waits = Enumerable.Range(1, 5)
            .Select(attempt => RetryPolicy.Decide(Error(ErrorCode.ENODEV), attempt, unexplained: 0, taskLimit: 0, Options))
            .ToList();

        Assert.All(waits, d => Assert.True(d.Retry));
        Assert.Equal([100, 200, 400, 500, 500], waits.Select(d => d.Wait.TotalMilliseconds));
    }

    [Theory]
    [InlineData(ErrorCode.EIO)]
    [InlineData(ErrorCode.ETIMEDOUT)]
    [InlineData(ErrorCode.EBUSY)]
    [InlineData(ErrorCode.ENOMEM)]
    public void Unexplained_transient_failures_are_retried_until_the_runs_limit(ErrorCode code)
    {
        Assert.True(RetryPolicy.Decide(Error(code), attempts: 2, unexplained: 2, taskLimit: 0, Options).Retry);
        Assert.False(RetryPolicy.Decide(Error(code), attempts: 3, unexplained: 3, taskLimit: 0, Options).Retry);
    }

    [Fact]
    public void Failures_explained_by_lost_nodes_get_more_attempts_but_not_for_ever()
    {
        // Five attempts, each ended by a lost node (none unexplained): still retried; the sixth is the last.
        Assert.True(RetryPolicy.Decide(Error(ErrorCode.ENODEV), attempts: 5, unexplained: 0, taskLimit: 0, Options).Retry);
        Assert.False(RetryPolicy.Decide(Error(ErrorCode.ENODEV), attempts: 6, unexplained: 0, taskLimit: 0, Options).Retry);
    }

    [Fact]
    public void A_tasks_own_limit_replaces_the_runs_limits()
    {
        Assert.True(RetryPolicy.Decide(Error(ErrorCode.EIO), attempts: 9, unexplained: 9, taskLimit: 10, Options).Retry);
        Assert.False(RetryPolicy.Decide(Error(ErrorCode.ENODEV), attempts: 2, unexplained: 0, taskLimit: 2, Options).Retry);
    }
}
