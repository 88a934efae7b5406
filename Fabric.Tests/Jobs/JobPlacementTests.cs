using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Jobs;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Fabric.Node.Jobs;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Tests.Jobs;

/// <summary>
/// Placement a tester controls: soft preferences that fall back, hard pins that wait for a lost node and then fail
/// naming it, a per-task attempt limit; and each attempt's node, device, times and outcome in the job's state.
/// </summary>
public sealed class JobPlacementTests : Akka.TestKit.Xunit2.TestKit
{
    private static DeviceInfo Device(string node, int index, long used = 0) =>
        new(new DeviceId(node, index), "emulated", index, 4096, 2, 64L << 20, used, 64L << 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, false);

    private static Scheduler.Demand Demand(string? prefer, IReadOnlyDictionary<DeviceId, long>? local = null) =>
        new("t", 1 << 20, local ?? new Dictionary<DeviceId, long>(), null, null, new Dictionary<DeviceId, int>(), prefer);

    [Fact]
    public void A_preferred_device_or_node_is_chosen_first_and_falls_back_when_gone()
    {
        DeviceInfo[] devices = [Device("n1", 0), Device("n2", 0), Device("n2", 1), Device("n3", 0)];
        var locality = new Dictionary<DeviceId, long> { [new DeviceId("n1", 0)] = 1 << 19 };

        Assert.Equal(new DeviceId("n2", 1), Scheduler.Choose(Demand("n2/dev1", locality), devices, new HashSet<DeviceId>()));
        Assert.Equal(new DeviceId("n2", 1), Scheduler.Choose(Demand("n2/1", locality), devices, new HashSet<DeviceId>()));
        Assert.Equal("n3", Scheduler.Choose(Demand("n3", locality), devices, new HashSet<DeviceId>())!.Value.Node);
        // The preferred device is gone: its node's other device; the node is gone: locality decides as without a preference.
        Assert.Equal(new DeviceId("n2", 0), Scheduler.Choose(Demand("n2/dev1", locality), [.. devices.Where(d => d.Id != new DeviceId("n2", 1))],
            new HashSet<DeviceId>()));
        Assert.Equal(new DeviceId("n1", 0), Scheduler.Choose(Demand("n9", locality), devices, new HashSet<DeviceId>()));
    }

    [Fact]
    public void Prefer_and_max_attempts_round_trip_through_json_and_bad_values_are_refused()
    {
        var spec = new JobBuilder("p").RandomInput("a", 1024, seed: 1).Output("b", 4096)
            .Task("t", t => t.Scale("b", "a", 2f), new TaskNeeds(0, null, null, Prefer: "n2/dev1")).Build();
        spec = spec with { Tasks = [spec.Tasks[0] with { MaxAttempts = 3 }] };

        var back = JobJson.Parse(JobJson.Write(spec));

        Assert.Equal(("n2/dev1", 3), (back.Tasks[0].Needs.Prefer, back.Tasks[0].MaxAttempts));
        Assert.Null(JobValidator.Validate(back, 64L << 20));
        var tooMany = JobValidator.Validate(spec with { Tasks = [spec.Tasks[0] with { MaxAttempts = 1000 }] }, 64L << 20);
        Assert.Equal(ErrorCode.EINVAL, tooMany!.Code);
        Assert.Contains("task t asks for 1000 attempts", tooMany.Message);
        var badPrefer = JobValidator.Validate(spec with { Tasks = [spec.Tasks[0] with { Needs = new TaskNeeds(0, null, null, "n2/gpu") }] }, 64L << 20);
        Assert.Contains("neither a node name nor a device", badPrefer!.Message);
        var json = System.Text.RegularExpressions.Regex.Replace(JobJson.Write(spec), "\"maxAttempts\":\\s*3", "\"maxAttempts\": -1");
        Assert.Contains("-1", json);
        Assert.Contains("maxAttempts is -1", Assert.Throws<FabricException>(() => JobJson.Parse(json)).Message);
    }

    [Fact]
    public async Task A_task_pinned_to_a_node_that_is_gone_waits_for_it_then_fails_the_job_naming_it()
    {
        var devices = FabricDevices.Start(Sys, "here", [new DeviceProfile { MemoryBytes = 16L << 20, Queues = 1 }]);
        await using var client = FabricClient.Connect(Sys, devices);
        var spec = new JobBuilder("pinned").RandomInput("a", 1024, seed: 1).Output("b", 4096)
            .Task("t", t => t.Scale("b", "a", 2f), new TaskNeeds(0, "elsewhere", null)).Build();
        var events = new Recorder();
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var result = await new JobRun(spec, client, events, new JobRunOptions { PinnedNodeWait = TimeSpan.FromSeconds(1.5) })
            .RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(ErrorCode.ENODEV, result.Error!.Code);
        Assert.Equal("task t needs node 'elsewhere', which has been gone from the cluster for 2 s", result.Error.Message);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.5), $"it failed after {clock.Elapsed.TotalSeconds:0.0} s, before the wait ran out");
        Assert.Empty(events.Placed);
    }

    [Fact]
    public async Task A_device_that_cannot_be_opened_because_its_node_is_gone_is_avoided_and_the_task_runs_elsewhere()
    {
        var devices = FabricDevices.Start(Sys, "here", [new DeviceProfile { MemoryBytes = 16L << 20, Queues = 1 }]);
        await using var client = FabricClient.Connect(Sys, devices);
        var here = await client.GetDeviceInfoAsync(new DeviceId("here", 0));
        // The listing is older than the loss: it still offers a roomier device of node "gone", which has just left.
        var stale = here with { Id = new DeviceId("gone", 0), MemoryTotal = 64L << 20 };
        ImmutableArray<DeviceInfo> offered = [stale, here];
        var listing = Sys.ActorOf(Akka.Actor.Props.Create(() => new StaleListing(offered)));
        devices.Tell(new DeviceManager.UseEnumerator(listing), TestActor);
        devices.Tell(new DeviceManager.PeersChanged(ImmutableDictionary<string, Akka.Actor.IActorRef>.Empty, ["gone"]), TestActor);
        var spec = new JobBuilder("stale").RandomInput("a", 1024, seed: 1).Output("b", 4096).Task("t", t => t.Scale("b", "a", 2f)).Build();
        var events = new Recorder();

        var result = await new JobRun(spec, client, events, new JobRunOptions()).RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(result.Error);
        Assert.Equal(["t@gone/dev0", "t@here/dev0"], events.Placed);
        Assert.StartsWith("ENODEV: device gone/dev0 is gone", events.Failed.Single());
    }

    private sealed class StaleListing : Akka.Actor.ReceiveActor
    {
        public StaleListing(ImmutableArray<DeviceInfo> devices) =>
            Receive<DeviceRequests.ListDevices>(_ => Sender.Tell(new DeviceRequests.DeviceList(devices), Self));
    }

    [Fact]
    public void Each_attempt_shows_its_device_times_and_outcome()
    {
        var spec = new JobBuilder("a").RandomInput("x", 1024, seed: 1).Output("y", 4096).Task("t", t => t.Scale("y", "x", 2f)).Build();
        var (d1, d2, d3) = (new DeviceId("n1", 0), new DeviceId("n2", 0), new DeviceId("n3", 1));
        IJobEvent[] history =
        [
            new Submitted("j", spec, 1000), new RunStarted("akka.tcp://fabric@127.0.0.1:1", 1001),
            new TaskPlaced("t", d1, 1, 1010), new TaskFailed("t", d1, 1, new FabricError(ErrorCode.ENODEV, "n1 lost"), true, 1020),
            new TaskPlaced("t", d2, 2, 1030), new RunStarted("akka.tcp://fabric@127.0.0.1:2", 1040),
            new TaskPlaced("t", d3, 3, 1050), new RunStopped("handed off", 1060), new RunStarted("akka.tcp://fabric@127.0.0.1:3", 1070),
            new TaskPlaced("t", d1, 4, 1080), new TaskFailed("t", d1, 4, new FabricError(ErrorCode.EIO, "revoked"), true, 1090),
            new TaskPlaced("t", d2, 5, 1100), new JobEvents.TaskCompleted("t", d2, 5, 0.01, 1110),
        ];

        var task = JobViews.Of(history.Aggregate(JobState.Empty("j"), (s, e) => s.Apply(e))).TaskDetails.Single();

        Assert.Equal(["NodeLost", "RunLost", "HandedOff", "Failed", "Completed"], task.AttemptLog.Select(a => a.Outcome));
        Assert.Equal(["n1", "n2", "n3", "n1", "n2"], task.AttemptLog.Select(a => a.Node));
        Assert.Equal("n3/dev1", task.AttemptLog[2].Device);
        Assert.Equal((1030, 1040), (task.AttemptLog[1].StartedAt.ToUnixTimeMilliseconds(), task.AttemptLog[1].EndedAt!.Value.ToUnixTimeMilliseconds()));
        Assert.StartsWith("EIO", task.AttemptLog[3].Error);
        Assert.Equal(5, task.Attempts);
    }

    private sealed class Recorder : IJobRunEvents
    {
        public List<string> Placed { get; } = [];
        public void TaskPlaced(string task, DeviceId device, int attempt) => Placed.Add($"{task}@{device}");
        public void TaskSucceeded(string task, DeviceId device, int attempt, TimeSpan took) { }
        public List<string> Failed { get; } = [];
        public void TaskFailed(string task, DeviceId device, int attempt, FabricError error, bool willRetry) => Failed.Add(error.ToString());
        public void BuffersLost(ImmutableArray<string> buffers, string reason) { }
    }
}
