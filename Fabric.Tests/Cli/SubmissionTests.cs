using Fabric.Core.Gateway;
using Fabric.Node.Cli;
using Fabric.Node.Gateway;
using Fabric.Node.Jobs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Fabric.Tests.Cli;

/// <summary>
/// A submission whose answers are lost (every POST times out at the gateway), settled by asking for the job by its id
/// once the submission has expired: known, not started, or not known because no gateway answers at all.
/// </summary>
public sealed class SubmissionTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(300);

    [Fact]
    public async Task A_submission_whose_answers_are_lost_but_whose_job_is_known_is_accepted_and_sent_once_more_to_be_listed()
    {
        var posts = 0;
        var postsWhenAsked = -1;
        await using var server = await ScriptedGateway.StartAsync(app =>
        {
            app.MapPost("/jobs", () => { Interlocked.Increment(ref posts); return TimedOut(); });
            app.MapGet("/jobs/{id}", (string id) =>
            {
                if (postsWhenAsked < 0) postsWhenAsked = posts;
                return Results.Json(Running(id), HttpGateway.Json);
            });
        });
        var notes = new List<string>();
        using var gateways = new GatewaySet([server.Url]) { Note = notes.Add };

        var outcome = await Submission.SubmitAsync(gateways, "{}", "lost-1", Patience, Settle, CancellationToken.None);

        Assert.Equal(Submission.Outcome.AcceptedAnswerLost, outcome);
        Assert.True(postsWhenAsked >= 2, $"asked after only {postsWhenAsked} submission(s)");
        Assert.True(posts > postsWhenAsked, "the known job was not submitted again to be listed");
        Assert.Contains(notes, n => n.StartsWith("job lost-1: no gateway answered its submission", StringComparison.Ordinal));
        Assert.Contains("job lost-1 was accepted; its answer had been lost", notes);
    }

    [Fact]
    public async Task A_submission_whose_answers_are_lost_and_whose_job_is_unknown_after_it_expired_was_not_started()
    {
        var posts = 0;
        await using var server = await ScriptedGateway.StartAsync(app =>
        {
            app.MapPost("/jobs", () => { Interlocked.Increment(ref posts); return TimedOut(); });
            app.MapGet("/jobs/{id}", (string id) => ScriptedGateway.Problem("ENOENT", $"there is no job {id}", 404));
        });
        using var gateways = new GatewaySet([server.Url]) { Note = _ => { } };

        var outcome = await Submission.SubmitAsync(gateways, "{}", "lost-2", Patience, Settle, CancellationToken.None);
        var postsAfter = posts;

        Assert.Equal(Submission.Outcome.NotStarted, outcome);
        Assert.True(postsAfter >= 2, $"submitted {postsAfter} time(s)");
    }

    [Fact]
    public async Task A_submission_that_no_gateway_answers_even_when_asked_after_it_expired_says_it_is_not_known()
    {
        await using var server = await ScriptedGateway.StartAsync(app =>
        {
            app.MapPost("/jobs", TimedOut);
            app.MapGet("/jobs/{id}", TimedOut);
        });
        using var gateways = new GatewaySet([server.Url]) { Note = _ => { } };

        var error = await Assert.ThrowsAsync<GatewayException>(() => Submission.SubmitAsync(gateways, "{}", "lost-3", Patience, Settle, CancellationToken.None));

        Assert.StartsWith("whether job lost-3 was accepted is not known: no gateway answers", error.Message);
        Assert.EndsWith("ask again with fabric job lost-3", error.Message);
    }

    private static IResult TimedOut() => ScriptedGateway.Problem("ETIMEDOUT", "the job region did not answer in time", 503);

    private static JobView Running(string id) => new(id, "lost", "Running", null, 1, [], 1, 0, [], [], DateTimeOffset.UtcNow, null, 2);
}
