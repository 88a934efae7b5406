using Fabric.Core;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Fabric.Node.Cli;
using Fabric.Node.Gateway;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Fabric.Tests.Cli;

/// <summary>
/// How <c>fabric top</c> reads its frames through scripted gateways: it moves to a gateway the members published when
/// the one it reads stops answering, says when it found none, and keeps a frame on the gateway that gave its devices
/// when only the jobs fail.
/// </summary>
public sealed class TopReaderTests
{
    private static DeviceInfo Device(string node, int index) => new(new DeviceId(node, index), "fabric-sim", index, 4096, 4, 16L << 20, 0, 16L << 20, 0, 0,
        0, 0, 0, 0, 0, 0, 0, false);

    /// <summary>A gateway answering <c>/devices</c>, <c>/nodes</c> (publishing <paramref name="published"/>) and <c>/jobs</c> as scripted.</summary>
    private static Task<ScriptedGateway> GatewayAsync(string self, DeviceInfo[] devices, Func<string[]> published, Func<Task<IResult>> jobs) =>
        ScriptedGateway.StartAsync(app =>
        {
            app.MapGet("/devices", () => Results.Json(devices, HttpGateway.Json));
            app.MapGet("/nodes", () => Results.Json(new NodeList(self,
                [.. published().Select((url, i) => new NodeStatus($"n{i + 1}", $"akka.tcp://fabric@127.0.0.1:{4053 + i}", "Up", true, 1, url))], []), HttpGateway.Json));
            app.MapGet("/jobs", jobs);
        });

    private static Task<IResult> NoJobs() => Task.FromResult(Results.Json(Array.Empty<JobView>(), HttpGateway.Json));

    /// <summary>A clock that moves one second per frame.</summary>
    private static Func<DateTimeOffset> Ticks()
    {
        var at = new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
        return () => at = at.AddSeconds(1);
    }

    [Fact]
    public async Task When_the_gateway_it_reads_stops_answering_the_next_frame_comes_from_one_the_members_published_and_then_none_is_said()
    {
        var second = await GatewayAsync("n2", [Device("n2", 0)], () => [], NoJobs);
        string[] urls = [];
        var first = await GatewayAsync("n1", [Device("n1", 0), Device("n2", 0)], () => urls, NoJobs);
        urls = [first.Url, second.Url];
        using var gateways = new GatewaySet([first.Url]); // only the first given: the second is learned from its /nodes
        var reader = new TopReader(gateways, TimeSpan.FromSeconds(2), Ticks());

        var before = await reader.ReadAsync(CancellationToken.None);
        await first.DisposeAsync();
        var after = await reader.ReadAsync(CancellationToken.None);
        await second.DisposeAsync();
        var none = await reader.ReadAsync(CancellationToken.None);

        Assert.Equal(first.Url, before.Gateway);
        Assert.Equal(["n1/dev0", "n2/dev0"], before.Devices.Select(d => d.Id.ToString()));
        Assert.Null(before.Switched);
        Assert.Equal(second.Url, after.Gateway);
        Assert.Equal(["n2/dev0"], after.Devices.Select(d => d.Id.ToString()));
        Assert.Equal("n2", after.Nodes!.Self);
        Assert.Equal((first.Url, second.Url, after.At), (after.Switched!.From, after.Switched.To, after.Switched.At));
        Assert.Contains($"cannot reach the Fabric gateway at {first.Url}/", after.Switched.Why);
        Assert.Equal(after.At, after.ReadAt);
        // None answers: the frame names both, says why the last failed, and keeps the last answer with when it was read.
        Assert.Null(none.Gateway);
        Assert.Equal([first.Url, second.Url], none.Tried.ToArray());
        Assert.StartsWith("cannot reach the Fabric gateway at ", none.Problem);
        Assert.False(none.Refused);
        Assert.Equal(after.Devices.ToArray(), none.Devices.ToArray());
        Assert.Equal(after.At, none.ReadAt);
        Assert.True(none.At > after.At);
        Assert.Equal(after.Switched, none.Switched);
    }

    [Fact]
    public async Task When_only_the_jobs_fail_the_frame_stays_on_the_gateway_that_gave_the_devices_and_shows_the_last_jobs_read_and_why()
    {
        var asked = 0;
        var job = new JobView("j1", "copy", "Running", null, 1, ["n1"], 2, 1, [], [], null, null, 3);
        string[] urls = [];
        await using var gateway = await GatewayAsync("n1", [Device("n1", 0)], () => urls, () => Task.FromResult(Interlocked.Increment(ref asked) == 1
            ? Results.Json(new[] { job }, HttpGateway.Json)
            : ScriptedGateway.Problem("EBUSY", "the job index did not answer in time", 503)));
        urls = [gateway.Url];
        using var gateways = new GatewaySet([gateway.Url]);
        var reader = new TopReader(gateways, TimeSpan.FromSeconds(2), Ticks());

        var first = await reader.ReadAsync(CancellationToken.None);
        var second = await reader.ReadAsync(CancellationToken.None);

        Assert.Null(first.JobsProblem);
        Assert.Equal(["j1"], first.Jobs.Select(j => j.JobId));
        Assert.Equal(gateway.Url, second.Gateway);
        Assert.Equal("EBUSY: the job index did not answer in time", second.JobsProblem);
        Assert.Equal(["j1"], second.Jobs.Select(j => j.JobId));
        Assert.Null(second.Switched);
        Assert.Equal(2, asked);
    }

    [Fact]
    public async Task Jobs_slower_than_the_interval_are_shown_by_a_later_frame_and_the_frame_in_between_says_since_when_they_are_asked()
    {
        var job = new JobView("j1", "copy", "Running", null, 1, ["n1"], 2, 1, [], [], null, null, 3);
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var asked = 0;
        await using var gateway = await GatewayAsync("n1", [Device("n1", 0)], () => [], async () =>
        {
            Interlocked.Increment(ref asked);
            await answer.Task;
            return Results.Json(new[] { job }, HttpGateway.Json);
        });
        using var gateways = new GatewaySet([gateway.Url]);
        var reader = new TopReader(gateways, TimeSpan.FromMilliseconds(200), Ticks());

        var waiting = await reader.ReadAsync(CancellationToken.None);
        var stillWaiting = await reader.ReadAsync(CancellationToken.None);
        answer.SetResult();
        await Task.Delay(500); // the answer arrives between two frames
        var answered = await reader.ReadAsync(CancellationToken.None);

        Assert.Equal(gateway.Url, waiting.Gateway);
        Assert.Empty(waiting.Jobs);
        Assert.Equal(waiting.At, waiting.JobsAskedAt);
        Assert.Equal(waiting.At, stillWaiting.JobsAskedAt); // the same request, still going
        Assert.Equal(["j1"], answered.Jobs.Select(j => j.JobId));
        Assert.Null(answered.JobsAskedAt);
        Assert.Equal(1, asked);
    }

    [Fact]
    public async Task A_gateway_that_holds_the_request_is_left_after_the_patience_for_the_next_one()
    {
        await using var second = await GatewayAsync("n2", [Device("n2", 0)], () => [], NoJobs);
        await using var frozen = await ScriptedGateway.StartAsync(app =>
            app.MapGet("/devices", async (CancellationToken t) => { await Task.Delay(TimeSpan.FromSeconds(30), t); return Results.Ok(); }));
        using var gateways = new GatewaySet([frozen.Url, second.Url]);
        var reader = new TopReader(gateways, TimeSpan.FromSeconds(1), Ticks());
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var frame = await reader.ReadAsync(CancellationToken.None);

        Assert.Equal(second.Url, frame.Gateway);
        Assert.InRange(clock.Elapsed, TopReader.RequestPatience, TopReader.RequestPatience + TimeSpan.FromSeconds(5));
        Assert.Equal(["n2/dev0"], frame.Devices.Select(d => d.Id.ToString()));
    }

    [Fact]
    public async Task A_gateway_that_refuses_is_said_with_its_code_and_sentence()
    {
        await using var gateway = await ScriptedGateway.StartAsync(app =>
        {
            app.MapGet("/nodes", () => ScriptedGateway.Problem("EACCES", "GET /nodes from 10.0.0.9 needs this gateway's API token", 401));
            app.MapGet("/devices", () => ScriptedGateway.Problem("EACCES", "GET /devices from 10.0.0.9 needs this gateway's API token", 401));
        });
        using var gateways = new GatewaySet([gateway.Url]);
        var reader = new TopReader(gateways, TimeSpan.FromSeconds(2), Ticks());

        var frame = await reader.ReadAsync(CancellationToken.None);

        Assert.Null(frame.Gateway);
        Assert.Null(frame.ReadAt);
        Assert.Equal("EACCES: GET /devices from 10.0.0.9 needs this gateway's API token", frame.Problem);
        Assert.True(frame.Refused);
        Assert.Equal([gateway.Url], frame.Tried.ToArray());
    }
}
