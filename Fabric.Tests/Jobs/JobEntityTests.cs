using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.TestKit;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Fabric.Node.Cluster;
using Fabric.Node.Jobs;
using Fabric.Node.Persistence;
using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace Fabric.Tests.Jobs;

/// <summary>
/// The job entity's states seen from outside, on a SQLite journal of the test's own: what Get, GetOutput and Start
/// answer in each, and its transitions (submission, run, end, recovery, rest). Where passivation matters the entities
/// run under a real shard region of a one-node cluster; otherwise as plain actors.
/// </summary>
public sealed class JobEntityTests : Akka.TestKit.Xunit2.TestKit
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private static readonly JobRunOptions Options = new() { Backoff = TimeSpan.FromMilliseconds(50) };
    private readonly string _root;
    private readonly IActorRef _devices;

    public JobEntityTests(ITestOutputHelper output) : this(output, Path.Combine(Path.GetTempPath(), $"fabric-job-entity-{Guid.NewGuid():N}"))
    {
    }

    private JobEntityTests(ITestOutputHelper output, string root) : base(FabricDevices.SystemSetup(SystemConfig(root)), null, output)
    {
        _root = root;
        var device = new DeviceProfile { MemoryBytes = 16L << 20, Queues = 2 };
        _devices = FabricDevices.Start(Sys, "t", [device, device]);
    }

    [Fact]
    public async Task A_job_never_submitted_answers_Unknown_stores_nothing_and_stops()
    {
        var region = await RegionAsync(CreateTestProbe().Ref);

        var state = Assert.IsType<JobState>(await region.Ask<object>(new JobEntity.Get("nobody"), Wait));
        var output = Assert.IsType<FabricError>(await region.Ask<object>(new JobEntity.GetOutput("nobody", "d", 0, 16), Wait));

        Assert.Equal(JobStatus.Unknown, state.Status);
        Assert.Equal((ErrorCode.ENOENT, "there is no job nobody"), (output.Code, output.Message));
        await AwaitAssertAsync(async () => Assert.DoesNotContain("nobody", await EntitiesAsync(region)), Wait, TimeSpan.FromMilliseconds(100));
        Assert.Equal(0, await RowsAsync("journal", "job-nobody"));
    }

    [Fact]
    public async Task A_Start_that_arrives_after_it_expired_starts_nothing_and_says_so_while_one_in_time_starts_the_job()
    {
        var region = await RegionAsync(_devices);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        var late = Assert.IsType<FabricError>(await region.Ask<object>(new JobEntity.Start("late", JobSamples.Diamond(), now - 1_000), Wait));
        var state = Assert.IsType<JobState>(await region.Ask<object>(new JobEntity.Get("late"), Wait));
        var timely = await region.Ask<object>(new JobEntity.Start("timely", JobSamples.Diamond(), now + 60_000), Wait);

        Assert.Equal(ErrorCode.ETIMEDOUT, late.Code);
        Assert.StartsWith("the submission of job late reached the job's node ", late.Message);
        Assert.EndsWith("nothing was started: submit it again", late.Message);
        Assert.Equal(JobStatus.Unknown, state.Status);
        Assert.Equal(0, await RowsAsync("journal", "job-late"));
        Assert.Equal(new JobEntity.Accepted("timely"), timely);
        Assert.Equal(JobStatus.Completed, (await AwaitJobAsync(region, "timely", s => s.IsFinished)).Status);
    }

    [Fact]
    public async Task A_Start_right_after_a_Get_of_a_free_id_is_served_by_the_entity_that_follows_the_stopping_one()
    {
        var region = await RegionAsync(_devices);

        region.Tell(new JobEntity.Get("quick"), TestActor); // the entity answers, then asks the shard to stop it
        var start = region.Ask<object>(new JobEntity.Start("quick", JobSamples.Diamond()), Wait);

        Assert.Equal(JobStatus.Unknown, (await ExpectMsgAsync<JobState>()).Status);
        Assert.Equal(new JobEntity.Accepted("quick"), await start);
        var ended = await AwaitJobAsync(region, "quick", s => s.IsFinished);
        Assert.Equal((JobStatus.Completed, 1), (ended.Status, ended.Runs));
    }

    [Fact]
    public async Task While_running_the_same_Start_is_accepted_another_is_refused_and_outputs_are_not_there_yet()
    {
        var region = await RegionAsync(CreateTestProbe().Ref); // a cluster that never answers: the run waits

        var accepted = await region.Ask<object>(new JobEntity.Start("busy", JobSamples.Diamond()), Wait);
        var running = Assert.IsType<JobState>(await region.Ask<object>(new JobEntity.Get("busy"), Wait));
        var again = await region.Ask<object>(new JobEntity.Start("busy", JobSamples.Diamond()), Wait);
        var other = Assert.IsType<FabricError>(await region.Ask<object>(new JobEntity.Start("busy", JobSamples.ThreeStage()), Wait));
        var output = Assert.IsType<FabricError>(await region.Ask<object>(new JobEntity.GetOutput("busy", "d", 0, 64), Wait));
        var after = Assert.IsType<JobState>(await region.Ask<object>(new JobEntity.Get("busy"), Wait));

        Assert.Equal(new JobEntity.Accepted("busy"), accepted);
        Assert.Equal((JobStatus.Running, 1, 2L), (running.Status, running.Runs, running.Events)); // Submitted, RunStarted
        Assert.Equal(new JobEntity.Accepted("busy"), again);
        Assert.Equal(ErrorCode.EEXIST, other.Code);
        Assert.Contains("busy", other.Message);
        Assert.Equal((ErrorCode.ENOENT, "job busy is Running: its outputs exist once it has completed"), (output.Code, output.Message));
        Assert.Equal((JobStatus.Running, 1, 2L), (after.Status, after.Runs, after.Events)); // the second Start started nothing
        Assert.Equal(2, await RowsAsync("journal", "job-busy"));
    }

    [Fact]
    public async Task An_ended_job_answers_from_its_state_and_once_idle_stops_and_recovers_from_its_snapshot()
    {
        var region = await RegionAsync(_devices, idleAfterEnd: TimeSpan.FromSeconds(1));
        var spec = JobSamples.Diamond();

        await region.Ask<JobEntity.Accepted>(new JobEntity.Start("done", spec), Wait);
        var completed = await AwaitJobAsync(region, "done", s => s.IsFinished);
        var chunk = Assert.IsType<JobEntity.OutputChunk>(await region.Ask<object>(new JobEntity.GetOutput("done", "d", 0, 1024), Wait));
        var again = await region.Ask<object>(new JobEntity.Start("done", spec), Wait);
        var other = Assert.IsType<FabricError>(await region.Ask<object>(new JobEntity.Start("done", JobSamples.ThreeStage()), Wait));

        Assert.Equal((JobStatus.Completed, 1), (completed.Status, completed.Runs));
        Assert.All(completed.Tasks, t => Assert.Equal(1, t.Completions));
        Assert.Equal([("d", 64L)], completed.Outputs.Select(o => (o.Name, o.Size)));
        Assert.Empty(completed.Outputs[0].Data); // a summary: the bytes come by GetOutput
        Assert.True(JobReference.Matches(JobReference.Evaluate(spec)["d"], chunk.Data, JobPlan.Of(spec).ProducerKernel("d")));
        Assert.Equal(new JobEntity.Accepted("done"), again);
        Assert.Equal(ErrorCode.EEXIST, other.Code);

        await AwaitAssertAsync(async () => Assert.DoesNotContain("done", await EntitiesAsync(region)), Wait, TimeSpan.FromMilliseconds(100));
        var recovered = Assert.IsType<JobState>(await region.Ask<object>(new JobEntity.Get("done"), Wait));

        Assert.Equal((JobStatus.Completed, 1, completed.Events), (recovered.Status, recovered.Runs, recovered.Events));
        Assert.True(await RowsAsync("snapshot", "job-done") >= 1, "the ended job saved no snapshot");
    }

    [Fact]
    public async Task A_failed_job_answers_Failed_with_its_error_and_has_no_outputs()
    {
        var noDevices = CreateTestProbe();
        noDevices.SetAutoPilot(new DelegateAutoPilot((sender, message) =>
        {
            if (message is DeviceRequests.ListDevices) sender.Tell(new DeviceRequests.DeviceList([]));
            return AutoPilot.KeepRunning;
        }));
        var region = await RegionAsync(noDevices.Ref);

        await region.Ask<JobEntity.Accepted>(new JobEntity.Start("doomed", JobSamples.Diamond()), Wait);
        var failed = await AwaitJobAsync(region, "doomed", s => s.IsFinished);
        var output = Assert.IsType<FabricError>(await region.Ask<object>(new JobEntity.GetOutput("doomed", "d", 0, 64), Wait));

        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Equal(ErrorCode.ENOMEM, failed.Error?.Code);
        Assert.Contains("0 devices", failed.Error?.Message);
        Assert.Empty(failed.Outputs);
        Assert.Equal((ErrorCode.ENOENT, "job doomed is Failed: its outputs exist once it has completed"), (output.Code, output.Message));
    }

    [Fact]
    public async Task Recovery_of_a_running_job_starts_a_new_run_that_completes_each_task_once()
    {
        var first = Sys.ActorOf(JobEntity.Props("again", CreateTestProbe().Ref, Options)); // its run waits for ever
        await first.Ask<JobEntity.Accepted>(new JobEntity.Start("again", JobSamples.Diamond()), Wait);
        Assert.Equal(1, (await first.Ask<JobState>(new JobEntity.Get("again"), Wait)).Runs);
        Watch(first);
        Sys.Stop(first);
        await ExpectTerminatedAsync(first);

        var second = Sys.ActorOf(JobEntity.Props("again", _devices, Options));
        var recovered = await second.Ask<JobState>(new JobEntity.Get("again"), Wait); // answered once the new run exists
        var ended = await AwaitJobAsync(second, "again", s => s.IsFinished);

        Assert.Equal((JobStatus.Running, 2), (recovered.Status, recovered.Runs));
        Assert.Equal((JobStatus.Completed, 2, 2), (ended.Status, ended.Runs, ended.RunNodes.Length));
        Assert.All(ended.Tasks, t => Assert.Equal(1, t.Completions));
    }

    [Fact]
    public async Task A_cancelled_job_stops_its_run_releases_its_device_memory_and_is_still_cancelled_after_recovery()
    {
        // A chain of 512² matmuls: one task after the other, long enough to be cancelled while it runs.
        const uint n = 512;
        var job = new JobBuilder("chain").RandomInput("a", n * n, seed: 1).RandomInput("b", n * n, seed: 2);
        for (var i = 0; i < 12; i++)
        {
            var (from, to) = (i == 0 ? "a" : $"m{i - 1}", i == 11 ? "out" : $"m{i}");
            if (i == 11) job.Output(to, n * n * 4); else job.Buffer(to, n * n * 4);
            job.Task($"mul{i}", t => t.MatMul(to, from, "b", n, n, n));
        }
        var spec = job.Build();
        var first = Sys.ActorOf(JobEntity.Props("stop-me", _devices, Options));
        await first.Ask<JobEntity.Accepted>(new JobEntity.Start("stop-me", spec), Wait);
        await AwaitJobAsync(first, "stop-me", s => s.Tasks.Any(t => t.Status == Fabric.Node.Jobs.TaskStatus.Placed));

        var cancelled = Assert.IsType<JobState>(await first.Ask<object>(new JobEntity.Cancel("stop-me"), Wait));
        var again = Assert.IsType<JobState>(await first.Ask<object>(new JobEntity.Cancel("stop-me"), Wait));
        await AwaitAssertAsync(async () =>
        {
            var devices = (await _devices.Ask<DeviceRequests.DeviceList>(new DeviceManager.ListLocalDevices(), Wait)).Devices;
            Assert.All(devices, d => Assert.Equal((0L, 0), (d.MemoryUsed, d.OpenContexts)));
        }, Wait, TimeSpan.FromMilliseconds(100));
        Watch(first);
        Sys.Stop(first);
        await ExpectTerminatedAsync(first);
        var second = Sys.ActorOf(JobEntity.Props("stop-me", _devices, Options));
        var recovered = await second.Ask<JobState>(new JobEntity.Get("stop-me"), Wait);
        var output = Assert.IsType<FabricError>(await second.Ask<object>(new JobEntity.GetOutput("stop-me", "out", 0, 16), Wait));

        Assert.Equal(JobStatus.Cancelled, cancelled.Status);
        Assert.Equal(ErrorCode.ECANCELED, cancelled.Error?.Code);
        Assert.True(cancelled.CompletedTasks < spec.Tasks.Length, "every task had completed before the cancel");
        Assert.Equal(cancelled.Events, again.Events); // the second Cancel changed nothing
        Assert.Equal((JobStatus.Cancelled, 1), (recovered.Status, recovered.Runs)); // recovered, and no new run started
        Assert.Equal("job stop-me is Cancelled: its outputs exist once it has completed", output.Message);
    }

    [Fact]
    public async Task A_free_id_that_is_stopping_holds_up_to_the_limit_of_Starts_for_its_next_start_and_refuses_more()
    {
        var shard = CreateTestProbe();
        Sys.ActorOf(Props.Create(() => new ShardStandIn(JobEntity.Props("free", _devices, Options), shard.Ref)));
        var entity = await shard.ExpectMsgAsync<IActorRef>();
        var submitter = CreateTestProbe();

        entity.Tell(new JobEntity.Get("free"), TestActor);
        Assert.Equal(JobStatus.Unknown, (await ExpectMsgAsync<JobState>()).Status);
        var passivate = await shard.ExpectMsgAsync<Passivate>();
        shard.IgnoreMessages<Passivate>(); // asked again every few seconds until the shard answers
        for (var i = 0; i <= JobEntityActor.StashLimit; i++) entity.Tell(new JobEntity.Start("free", JobSamples.Diamond()), submitter.Ref);
        var refused = await submitter.ExpectMsgAsync<FabricError>();
        Watch(entity);
        entity.Tell(passivate.StopMessage);

        Assert.Equal(ErrorCode.EBUSY, refused.Code);
        Assert.Contains("free", refused.Message);
        for (var i = 0; i < JobEntityActor.StashLimit; i++)
        {
            await shard.ExpectMsgAsync<JobEntity.Start>();
            Assert.Equal(submitter.Ref, shard.LastSender); // handed back with their sender, for the next incarnation to answer
        }
        await ExpectTerminatedAsync(entity);
        await submitter.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
        Assert.Equal(0, await RowsAsync("journal", "job-free"));
    }

    /// <summary>In place of a shard: reports its entity and every message handed to it; a Passivate is left for the test to answer.</summary>
    private sealed class ShardStandIn : ReceiveActor
    {
        public ShardStandIn(Props entity, IActorRef probe)
        {
            probe.Tell(Context.ActorOf(entity, "entity"));
            ReceiveAny(m => probe.Forward(m));
        }
    }

    private static Config SystemConfig(string root)
    {
        Directory.CreateDirectory(root);
        return ConfigurationFactory.ParseString("""
                akka.loglevel = INFO
                akka.actor.provider = cluster
                akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
                akka.cluster.sharding { remember-entities = on, remember-entities-store = eventsourced, state-store-mode = ddata }
                """)
            .WithFallback(PersistenceOptions.Sqlite(root).ToConfig())
            .WithFallback(ConfigurationFactory.ParseString(ClusterTuning.Hocon));
    }

    /// <summary>Joins this system to itself (a one-node cluster) and starts the job region there, as a node does.</summary>
    private async Task<IActorRef> RegionAsync(IActorRef deviceManager, TimeSpan? idleAfterEnd = null)
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        var up = new TaskCompletionSource();
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        await cluster.JoinAsync(cluster.SelfAddress);
        await up.Task.WaitAsync(Wait);
        return await ClusterSharding.Get(Sys).StartAsync(JobEntity.TypeName, id => JobEntity.RegionEntity(id, deviceManager, Options, idleAfterEnd),
            ClusterShardingSettings.Create(Sys), new JobEntity.MessageExtractor(), JobShardAllocation.For(Sys), JobEntity.HandOff.Instance);
    }

    [Fact]
    public async Task A_wide_job_stores_its_outputs_once_and_keeps_only_its_latest_snapshot()
    {
        var region = await RegionAsync(_devices);
        var builder = new JobBuilder("wide").Ramp("x", 1024);
        const int tasks = 210; // 2 + 2 × 210 + 1 events: snapshots after 200 and 400 while it runs, one before its end
        for (var i = 0; i < tasks; i++)
        {
            var factor = i + 1f;
            builder.Output($"o{i}", 4096).Task($"t{i}", t => t.Scale($"o{i}", "x", factor));
        }
        var spec = builder.Build();

        await region.Ask<JobEntity.Accepted>(new JobEntity.Start("wide", spec), Wait);
        var completed = await AwaitJobAsync(region, "wide", s => s.IsFinished);
        var outputs = completed.Outputs.Sum(o => o.Size);
        await AwaitAssertAsync(async () => Assert.Equal(1, await RowsAsync("snapshot", "job-wide")), Wait, TimeSpan.FromMilliseconds(100));
        var journal = await PayloadBytesAsync("journal", "message", "job-wide");
        var snapshot = await PayloadBytesAsync("snapshot", "snapshot", "job-wide");
        var last = Assert.IsType<JobEntity.OutputChunk>(await region.Ask<object>(new JobEntity.GetOutput("wide", $"o{tasks - 1}", 0, 8192), Wait));

        Assert.Equal((JobStatus.Completed, tasks, 4096L * tasks), (completed.Status, completed.CompletedTasks, outputs));
        Assert.Equal(completed.Events, await RowsAsync("journal", "job-wide"));
        Assert.True(journal >= outputs && journal < outputs + outputs / 4, $"the journal holds {journal} bytes for {outputs} bytes of outputs: they are stored once");
        Assert.True(snapshot < outputs / 4, $"the snapshot holds {snapshot} bytes for {outputs} bytes of outputs: it must not copy them");
        Assert.Equal(Enumerable.Range(0, 1024).Select(i => i * (float)tasks), JobSamples.ToFloats(last.Data)); // x[i] = i, scaled by 210
    }

    [Fact]
    public async Task Reading_a_job_that_was_never_submitted_writes_nothing()
    {
        var region = await RegionAsync(_devices);
        var jobs = new JobsService(Sys, region, _devices);
        var id = await jobs.SubmitAsync(JobSamples.Diamond(), CancellationToken.None, "real");
        await AwaitJobAsync(region, id, s => s.IsFinished);
        var before = await AllJournalRowsAsync();

        var get = await Assert.ThrowsAsync<FabricException>(() => jobs.GetAsync("typo", CancellationToken.None));
        var output = await Assert.ThrowsAsync<FabricException>(() => jobs.GetOutputAsync("typo", "d", CancellationToken.None));
        var cancel = await Assert.ThrowsAsync<FabricException>(() => jobs.CancelAsync("typo", CancellationToken.None));
        var known = await jobs.GetAsync(id, CancellationToken.None);

        Assert.All([get, output, cancel], e => Assert.Equal((ErrorCode.ENOENT, "there is no job typo"), (e.Error.Code, e.Error.Message)));
        Assert.Equal(JobStatus.Completed, known.Status);
        Assert.DoesNotContain("typo", await EntitiesAsync(region));
        Assert.Equal(before, await AllJournalRowsAsync());
    }

    [Fact]
    public async Task A_read_asks_the_job_itself_when_the_index_does_not_answer()
    {
        var region = await RegionAsync(_devices);
        var id = await new JobsService(Sys, region, _devices).SubmitAsync(JobSamples.Diamond(), CancellationToken.None, "listed");
        await AwaitJobAsync(region, id, s => s.IsFinished);
        // The index's node lost: its lookups go unanswered while it moves; the jobs' own entities still answer.
        var indexLost = Sys.ActorOf(Props.Create(() => new DropLookups(region)));
        var jobs = new JobsService(Sys, indexLost, _devices);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var state = await jobs.GetAsync(id, CancellationToken.None);
        var waited = clock.Elapsed;
        var typo = await jobs.GetAsync("typo", CancellationToken.None);

        Assert.Equal((JobStatus.Completed, 4), (state.Status, state.CompletedTasks));
        Assert.True(waited >= JobsService.IndexLookupTimeout, $"answered after {waited.TotalSeconds:0.00} s: the index was asked first");
        Assert.Equal(JobStatus.Unknown, typo.Status); // the gateway answers 404 for it
    }

    private sealed class DropLookups : ReceiveActor
    {
        public DropLookups(IActorRef region)
        {
            Receive<JobIndex.Lookup>(_ => { });
            ReceiveAny(m => region.Forward(m));
        }
    }

    [Fact]
    public async Task The_journal_warm_up_of_a_starting_node_reads_the_journal_and_writes_nothing()
    {
        // A fresh journal: the warm-up's read creates its tables (as any first use does) and no row.
        var warm = Fabric.Node.Persistence.JournalWarmup.RunAsync(Sys, "n9", TimeSpan.FromSeconds(30));
        var ended = await Task.WhenAny(warm, Task.Delay(TimeSpan.FromSeconds(40)));

        Assert.Same(warm, ended);
        Assert.Equal(0, await AllJournalRowsAsync());
    }

    private static async Task<JobState> AwaitJobAsync(IActorRef entities, string jobId, Func<JobState, bool> until)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            var state = await entities.Ask<JobState>(new JobEntity.Get(jobId), Wait);
            if (until(state)) return state;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {jobId} is still {state.Status} after {Wait.TotalSeconds:0} s");
            await Task.Delay(100);
        }
    }

    private static async Task<ImmutableArray<string>> EntitiesAsync(IActorRef region) =>
        [.. (await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, Wait)).Shards.SelectMany(s => s.EntityIds)];

    /// <summary>The bytes of the payloads (column <paramref name="column"/>) the journal or snapshot table holds for one persistence id.</summary>
    private async Task<long> PayloadBytesAsync(string table, string column, string persistenceId)
    {
        await using var connection = new SqliteConnection(PersistenceOptions.Sqlite(_root).EffectiveConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COALESCE(SUM(LENGTH({column})), 0) FROM {table} WHERE persistence_id = @id";
        command.Parameters.AddWithValue("@id", persistenceId);
        return Convert.ToInt64(await command.ExecuteScalarAsync());
    }

    /// <summary>All rows of the journal table, whoever wrote them (jobs, the index, the shards' remembered entities).</summary>
    private async Task<long> AllJournalRowsAsync()
    {
        await using var connection = new SqliteConnection(PersistenceOptions.Sqlite(_root).EffectiveConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM journal";
        return Convert.ToInt64(await command.ExecuteScalarAsync());
    }

    /// <summary>The rows the journal or snapshot table holds for one persistence id (none while the plugin has not made the table yet).</summary>
    private async Task<long> RowsAsync(string table, string persistenceId)
    {
        await using var connection = new SqliteConnection(PersistenceOptions.Sqlite(_root).EffectiveConnectionString);
        await connection.OpenAsync();
        await using var exists = connection.CreateCommand();
        exists.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = @table";
        exists.Parameters.AddWithValue("@table", table);
        if (Convert.ToInt64(await exists.ExecuteScalarAsync()) == 0) return 0;
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COUNT(*) FROM {table} WHERE persistence_id = @id";
        command.Parameters.AddWithValue("@id", persistenceId);
        return Convert.ToInt64(await command.ExecuteScalarAsync());
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (!disposing) return;
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }
}
