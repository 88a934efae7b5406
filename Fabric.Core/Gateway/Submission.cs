namespace Fabric.Core.Gateway;

/// <summary>
/// A submission under an id of the client's choosing, sent until a gateway answers. When none answers in time, it
/// settles what happened: it waits until a submission still on its way would have expired (the gateway's
/// <see cref="GatewayDeadline"/> plus <see cref="ClockSkew"/>), then asks for the job by its id. The job is
/// then either known (it was accepted) or certainly not started.
/// </summary>
public static class Submission
{
    /// <summary>
    /// How long a node's gateway keeps trying to start a submitted job before it gives up on it (after that, the
    /// submission can no longer start the job).
    /// </summary>
    public static readonly TimeSpan GatewayDeadline = TimeSpan.FromSeconds(30);

    /// <summary>How far the clocks of the gateway's and the job's nodes may be apart for "not started" to be certain.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(10);

    /// <summary>What became of a submission.</summary>
    public enum Outcome
    {
        /// <summary>A gateway accepted it.</summary>
        Accepted,
        /// <summary>No gateway answered it, but the job is known: accepted, its answer lost.</summary>
        AcceptedAnswerLost,
        /// <summary>No gateway answered it, and it expired without starting the job.</summary>
        NotStarted,
    }

    /// <summary>
    /// Sends <paramref name="json"/> as job <paramref name="jobId"/>: each gateway once, then again for
    /// <paramref name="patience"/> while they answer 5xx; when none answered, settles after <paramref name="settleAfter"/>
    /// (asking for the job, again with that patience).
    /// A refusal (4xx), and a cluster that cannot be asked even then, → <see cref="GatewayException"/>.
    /// </summary>
    public static async Task<Outcome> SubmitAsync(GatewaySet gateways, string json, string jobId, TimeSpan patience, TimeSpan settleAfter,
        CancellationToken cancel)
    {
        Task<string> Send(GatewayClient client, CancellationToken token) => client.SubmitAsync(json, token, jobId);
        GatewayException lost;
        try
        {
            try { await gateways.AskAsync(Send, TimeSpan.Zero, cancel); }
            catch (GatewayException e) when (e.Transient && e.Answered) { await gateways.AskAsync(Send, patience, cancel); }
            return Outcome.Accepted;
        }
        catch (GatewayException e) when (e.Transient) { lost = e; }

        gateways.Note($"job {jobId}: no gateway answered its submission ({lost.Message}); in {settleAfter.TotalSeconds:0} s, when a " +
                      "submission still on its way has expired, asking whether it was accepted");
        await Task.Delay(settleAfter, cancel);
        try { await gateways.AskAsync((c, t) => c.JobAsync(jobId, t), patience, cancel); }
        catch (GatewayException e) when (!e.Transient && e.Message.StartsWith("ENOENT", StringComparison.Ordinal)) { return Outcome.NotStarted; }
        catch (GatewayException e) when (e.Transient)
        {
            throw new GatewayException($"whether job {jobId} was accepted is not known: no gateway answers ({e.Message}); ask again with fabric job {jobId}");
        }
        // Known. Sent once more under its id (it starts nothing twice) so that it is listed as well, should the listing be what was lost.
        try { await gateways.AskAsync(Send, patience, cancel); }
        catch (GatewayException e) when (e.Transient) { }
        gateways.Note($"job {jobId} was accepted; its answer had been lost");
        return Outcome.AcceptedAnswerLost;
    }

    /// <summary>Sends <paramref name="spec"/> as compact JSON (<see cref="Jobs.JobJson.WriteCompact"/>), as the overload with the JSON does.</summary>
    public static Task<Outcome> SubmitAsync(GatewaySet gateways, Jobs.JobSpec spec, string jobId, TimeSpan patience, TimeSpan settleAfter,
        CancellationToken cancel) =>
        SubmitAsync(gateways, System.Text.Encoding.UTF8.GetString(Jobs.JobJson.WriteCompact(spec)), jobId, patience, settleAfter, cancel);

    /// <summary>The wait before a lost submission is settled: the gateway's deadline for it, and the clocks' skew.</summary>
    public static TimeSpan SettleAfter => GatewayDeadline + ClockSkew;
}
