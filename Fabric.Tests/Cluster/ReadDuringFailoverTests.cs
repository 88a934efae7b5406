using System.Diagnostics;
using Fabric.Core.Gateway;
using Fabric.Core.Jobs;
using Fabric.Node.Hosting;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// A job read through a gateway whose node has never routed to the job, while the oldest node — the home of the
/// shard coordinator, which that node's region would ask where the job lives — has just been killed: the read is
/// answered by the node that holds the job, before the lost node is even removed (the coordinator cannot have moved).
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ReadDuringFailoverTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-failover-read-{Guid.NewGuid():N}");

    [Fact]
    public async Task A_cold_read_of_a_job_is_answered_while_the_coordinators_node_is_lost()
    {
        await using var cluster = await LocalCluster.StartAsync(new LocalCluster.Options
        {
            Nodes = 3, DeviceMemory = "16MiB", Root = _root, StartTimeout = TimeSpan.FromSeconds(90),
        }, output.WriteLine, CancellationToken.None);
        using var n3 = new GatewayClient(cluster["n3"].Gateway);
        using var n2 = new GatewayClient(cluster["n2"].Gateway);

        // Submitted and followed through n3 until one job lives on n3 (n1 founded the cluster: it is the oldest, the
        // coordinator's node). n2 never reads these jobs before the kill.
        string? jobId = null;
        for (var attempt = 0; attempt < 12 && jobId is null; attempt++)
        {
            var id = await n3.SubmitAsync(JobJson.Write(new JobBuilder($"cold-read-{attempt}").RandomInput("x", 1024, seed: 3).Output("y", 4096)
                .Task("t", t => t.Scale("y", "x", 2)).Build()), CancellationToken.None);
            var view = await AwaitAsync(n3, id, v => v.Status == "Completed", TimeSpan.FromSeconds(60));
            if (view.RunNodes[^1] == cluster["n3"].Address) jobId = id;
        }
        Assert.True(jobId is not null, "no job of 12 was placed on n3");
        var expected = await n3.JobBriefAsync(jobId!, CancellationToken.None);

        cluster["n1"].Kill();
        var clock = Stopwatch.StartNew();
        var read = await n2.JobBriefAsync(jobId!, CancellationToken.None);
        var seconds = clock.Elapsed.TotalSeconds;
        var members = await n3.NodesAsync(CancellationToken.None);

        output.WriteLine($"read after {seconds:0.00} s: {read.Status} {read.CompletedTasks}/{read.Tasks}; members then: " +
                         string.Join(", ", members.Nodes.Select(n => $"{n.Node} {n.Status}")));
        Assert.Equal((expected.JobId, expected.Status, expected.Tasks, expected.CompletedTasks, expected.Events),
            (read.JobId, read.Status, read.Tasks, read.CompletedTasks, read.Events));
        // Answered while n1 was still a member: the shard coordinator had not moved yet, so n2 did not learn from it.
        Assert.Contains(members.Nodes, n => n.Node == "n1");
    }

    private static async Task<JobView> AwaitAsync(GatewayClient gateway, string jobId, Func<JobView, bool> until, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var view = await gateway.JobAsync(jobId, CancellationToken.None);
            if (until(view)) return view;
            if (clock.Elapsed > timeout) throw new TimeoutException($"job {jobId} is {view.Status} after {timeout.TotalSeconds:0} s");
            await Task.Delay(100);
        }
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }
}
