using System.Numerics;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;

namespace Fabric.Node.Cli;

/// <summary>Reads a completed job's outputs through a gateway and checks each against the host reference.</summary>
public static class JobVerifier
{
    /// <summary>One output's verdict: <paramref name="Difference"/> null when it matches, else the first element that differs.</summary>
    public sealed record OutputCheck(string Output, long Bytes, string? Difference)
    {
        public bool Matches => Difference is null;
    }

    /// <summary>What the check does, in the words the CLI prints before it runs.</summary>
    public static string Method =>
        $"the whole job recomputed on the host ({Vector<float>.Count} float lanes, {Environment.ProcessorCount} cores) and every element of each output " +
        $"compared: float32 results within {JobReference.RelativeTolerance:0e0} relative, the rest byte for byte";

    /// <summary>
    /// Every output of <paramref name="spec"/> fetched from job <paramref name="jobId"/> and compared with
    /// <paramref name="expected"/> (the reference's buffers; computed here when null).
    /// </summary>
    public static Task<IReadOnlyList<OutputCheck>> VerifyAsync(GatewayClient gateway, string jobId, JobSpec spec, CancellationToken cancel,
        IReadOnlyDictionary<string, byte[]>? expected = null) =>
        VerifyAsync((output, c) => gateway.OutputAsync(jobId, output, c), spec, cancel, expected);

    /// <summary>The same, with each output's bytes read by <paramref name="fetch"/>.</summary>
    public static async Task<IReadOnlyList<OutputCheck>> VerifyAsync(Func<string, CancellationToken, Task<byte[]>> fetch, JobSpec spec,
        CancellationToken cancel, IReadOnlyDictionary<string, byte[]>? expected = null)
    {
        // The reference is computed while the outputs are fetched.
        var reference = expected is null ? Task.Run(() => (IReadOnlyDictionary<string, byte[]>)JobReference.Evaluate(spec), cancel) : Task.FromResult(expected);
        var plan = JobPlan.Of(spec);
        var actual = new List<(string Name, byte[] Bytes)>();
        foreach (var output in spec.Buffers.Where(b => b.Output)) actual.Add((output.Name, await fetch(output.Name, cancel)));
        var values = await reference;
        return [.. actual.Select(a => new OutputCheck(a.Name, a.Bytes.Length, JobReference.Difference(values[a.Name], a.Bytes, plan.ProducerKernel(a.Name))))];
    }
}
