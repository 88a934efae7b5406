using Fabric.Core.Jobs;

namespace Fabric.Node.Cli;

/// <summary>Reads a completed job's outputs through a gateway and checks each against the host reference.</summary>
public static class JobVerifier
{
    public sealed record OutputCheck(string Output, long Bytes, bool Matches);

    /// <summary>
    /// Every output of <paramref name="spec"/> fetched from job <paramref name="jobId"/> and compared with
    /// <paramref name="expected"/> (the reference's buffers; computed here when null).
    /// </summary>
    public static async Task<IReadOnlyList<OutputCheck>> VerifyAsync(GatewayClient gateway, string jobId, JobSpec spec, CancellationToken cancel,
        IReadOnlyDictionary<string, byte[]>? expected = null)
    {
        expected ??= JobReference.Evaluate(spec);
        var plan = JobPlan.Of(spec);
        var checks = new List<OutputCheck>();
        foreach (var output in spec.Buffers.Where(b => b.Output))
        {
            var actual = await gateway.OutputAsync(jobId, output.Name, cancel);
            checks.Add(new OutputCheck(output.Name, actual.Length, JobReference.Matches(expected[output.Name], actual, plan.ProducerKernel(output.Name))));
        }
        return checks;
    }
}
