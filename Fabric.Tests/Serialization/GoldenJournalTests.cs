using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Core.Serialization;
using Fabric.Devices;
using Fabric.Node.Jobs;
using Fabric.Node.Persistence;
using Microsoft.Data.Sqlite;
using static Fabric.Node.Jobs.JobEvents;
using static Fabric.Tests.Serialization.GoldenJournal;

namespace Fabric.Tests.Serialization;

/// <summary>
/// A copy of <c>Golden/journal.db</c>, written by an earlier build (see <see cref="GoldenJournal"/>), opened with the real
/// SQLite journal and snapshot store by an ActorSystem configured as a node's. The expected values are written out here,
/// not taken from the generator, so a renamed event or a changed <c>[Key]</c> layout fails these tests however the
/// generator changes.
/// </summary>
public sealed class GoldenJournalTests(GoldenJournalTests.Journal journal) : IClassFixture<GoldenJournalTests.Journal>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private static readonly string[] CompletedEvents =
    [
        "Submitted golden-1 'golden' @0",
        "RunStarted akka.tcp://fabric@10.0.0.1:4053 @10",
        "TaskPlaced left on node-a/dev0 #1 @20",
        "TaskPlaced right on node-b/dev1 #1 @21",
        "TaskPlaced mark on node-a/dev1 #1 @22",
        "TaskFailed right on node-b/dev1 #1 (EBUSY: device node-b/dev1 is resetting) will retry @30",
        "TaskCompleted left on node-a/dev0 #1 in 0.125 s @40",
        "TaskCompleted mark on node-a/dev1 #1 in 0.0625 s @41",
        "TaskPlaced right on node-b/dev0 #2 @50",
        "TaskCompleted right on node-b/dev0 #2 in 0.25 s @60",
        "BuffersLost u (node node-a was lost) @70",
        "RunStarted akka.tcp://fabric@10.0.0.2:4053 @80",
        "TaskPlaced left on node-b/dev1 #2 @90",
        "TaskRecomputed left on node-b/dev1 #2 in 0.5 s @100",
        "TaskPlaced combine on node-b/dev0 #1 @110",
        "TaskCompleted combine on node-b/dev0 #1 in 1.5 s @120",
        "Completed crc=12345678 m=efbeaddeefbeadde s=0000803f000000400000404000008040 @130",
    ];

    private static readonly string[] FailedEvents =
    [
        "Submitted golden-2 'golden-failing' @1000",
        "RunStarted akka.tcp://fabric@10.0.0.1:4053 @1010",
        "TaskPlaced copy on node-a/dev0 #1 @1020",
        "TaskFailed copy on node-a/dev0 #1 (EFAULT: node-a/dev0 faulted at IOVA 0x10000 (unmapped)) gives up @1030",
        "Failed (EFAULT: task copy failed: node-a/dev0 faulted at IOVA 0x10000 (unmapped)) @1040",
    ];

    private static readonly string[] CompletedSpecText =
    [
        "buffer a 16 inline 0000803f000000400000404000008040",
        "buffer b 16 randomFloats seed 7 scale 0.5",
        "buffer c 16 ramp scale 2",
        "buffer u 16",
        "buffer v 16",
        "buffer s 16 output",
        "buffer crc 4 output",
        "buffer m 8 output",
        "task left needs 0 any any: matmul u a b alpha 0 mnk 2,2,2 pattern 0",
        "task right needs 0 any gpu-small: axpy v c b alpha 0.5 mnk 0,0,0 pattern 0",
        "task combine needs 1048576 node-b any: add s u v alpha 0 mnk 0,0,0 pattern 0; checksum crc s - alpha 0 mnk 0,0,0 pattern 0",
        "task mark needs 0 any any: fill m - - alpha 0 mnk 0,0,0 pattern 3735928559",
    ];

    [Fact]
    public async Task Every_event_of_the_golden_jobs_replays_with_its_values()
    {
        var completed = await journal.ReplayAsync($"job-{CompletedJob}", useSnapshots: false);
        var failed = await journal.ReplayAsync($"job-{FailedJob}", useSnapshots: false);

        Assert.Equal((0L, 17L), (completed.SnapshotSequenceNr, completed.LastSequenceNr));
        Assert.Equal(CompletedEvents, completed.Events.Select(Render));
        Assert.Equal(FailedEvents, failed.Events.Select(Render));
        var spec = Assert.IsType<Submitted>(completed.Events[0]).Spec;
        Assert.Equal(CompletedSpecText, RenderSpec(spec));
        Assert.Equal(["buffer z 8 zero", "buffer o 8 output", "task copy needs 0 any any: copy o z - alpha 0 mnk 0,0,0 pattern 0"],
            RenderSpec(Assert.IsType<Submitted>(failed.Events[0]).Spec));
        Assert.Equal(JobJson.Write(CompletedSpec()), JobJson.Write(spec));
    }

    [Fact]
    public async Task A_job_snapshot_recovers_with_the_events_after_it()
    {
        var recovered = await journal.ReplayAsync($"job-{CompletedJob}", useSnapshots: true);

        Assert.Equal((SnapshotAfter, 17L, 9), (recovered.SnapshotSequenceNr, recovered.LastSequenceNr, recovered.Events.Length));
        var snapshot = Assert.IsType<JobState>(recovered.Snapshot);
        Assert.Equal(
        [
            "golden-1 'golden' Running, 8 events, 1 runs on akka.tcp://fabric@10.0.0.1:4053, submitted @0, finished not yet",
            "task left stage 0 Completed, 1 attempts on node-a/dev0, 1 completions, 0 recomputations, 0.125 s",
            "task right stage 0 Waiting, 1 attempts on node-b/dev1, 0 completions, 0 recomputations, 0 s, last EBUSY: device node-b/dev1 is resetting",
            "task mark stage 0 Completed, 1 attempts on node-a/dev1, 1 completions, 0 recomputations, 0.0625 s",
            "task combine stage 1 Waiting, 0 attempts on , 0 completions, 0 recomputations, 0 s",
        ], RenderState(snapshot));
        Assert.Equal(CompletedEvents[(int)SnapshotAfter..], recovered.Events.Select(Render));
    }

    [Fact]
    public async Task The_job_entity_recovers_a_completed_job_and_serves_its_outputs()
    {
        var replayed = await journal.ReplayAsync($"job-{CompletedJob}", useSnapshots: false);
        var entity = journal.System.ActorOf(JobEntity.Props(CompletedJob, ActorRefs.Nobody, new JobRunOptions()));

        var state = await entity.Ask<JobState>(new JobEntity.Get(CompletedJob), Timeout);
        var outputs = new Dictionary<string, string>();
        foreach (var name in new[] { "crc", "m", "s" })
        {
            var chunk = await entity.Ask<JobEntity.OutputChunk>(new JobEntity.GetOutput(CompletedJob, name, 0, 1 << 20), Timeout);
            outputs[name] = $"{Convert.ToHexStringLower(chunk.Data)}/{chunk.Total}";
        }

        Assert.Equal(
        [
            "golden-1 'golden' Completed, 17 events, 2 runs on akka.tcp://fabric@10.0.0.1:4053 akka.tcp://fabric@10.0.0.2:4053, submitted @0, finished @130",
            "task left stage 0 Completed, 2 attempts on node-a/dev0 node-b/dev1, 1 completions, 1 recomputations, 0.5 s",
            "task right stage 0 Completed, 2 attempts on node-b/dev1 node-b/dev0, 1 completions, 0 recomputations, 0.25 s, last EBUSY: device node-b/dev1 is resetting",
            "task mark stage 0 Completed, 1 attempts on node-a/dev1, 1 completions, 0 recomputations, 0.0625 s",
            "task combine stage 1 Completed, 1 attempts on node-b/dev0, 1 completions, 0 recomputations, 1.5 s",
            "output crc 4",
            "output m 8",
            "output s 16",
        ], RenderState(state));
        Assert.Equal(["left", "right", "combine", "mark"], state.Spec!.Tasks.Select(t => t.Name));
        Assert.Equal(new Dictionary<string, string>
        {
            ["crc"] = "12345678/4",
            ["m"] = "efbeaddeefbeadde/8",
            ["s"] = "0000803f000000400000404000008040/16",
        }, outputs);
        Assert.Equal(RenderState(state), RenderState(Fold(CompletedJob, replayed.Events)));
    }

    [Fact]
    public async Task The_job_entity_recovers_a_failed_job_from_its_final_snapshot()
    {
        var recovered = await journal.ReplayAsync($"job-{FailedJob}", useSnapshots: true);
        var entity = journal.System.ActorOf(JobEntity.Props(FailedJob, ActorRefs.Nobody, new JobRunOptions()));

        var state = await entity.Ask<JobState>(new JobEntity.Get(FailedJob), Timeout);

        Assert.Equal((5L, 5L, 0), (recovered.SnapshotSequenceNr, recovered.LastSequenceNr, recovered.Events.Length));
        Assert.Equal(
        [
            "golden-2 'golden-failing' Failed, 5 events, 1 runs on akka.tcp://fabric@10.0.0.1:4053, submitted @1000, finished @1040, " +
            "error EFAULT: task copy failed: node-a/dev0 faulted at IOVA 0x10000 (unmapped)",
            "task copy stage 0 Failed, 1 attempts on node-a/dev0, 0 completions, 0 recomputations, 0 s, last EFAULT: node-a/dev0 faulted at IOVA 0x10000 (unmapped)",
        ], RenderState(state));
        Assert.Equal(RenderState(state), RenderState(Assert.IsType<JobState>(recovered.Snapshot)));
    }

    [Fact]
    public async Task The_job_index_recovers_its_listings()
    {
        var replayed = await journal.ReplayAsync("job-index", useSnapshots: false);
        var index = journal.System.ActorOf(JobIndex.Props());

        var listing = await index.Ask<JobIndex.Listing>(new JobIndex.List(), Timeout);

        Assert.Equal(["golden-1 'golden' @-5", "golden-2 'golden-failing' @995"],
            listing.Jobs.Select(j => $"{j.JobId} '{j.Name}' @{j.SubmittedAtMs - T0}"));
        Assert.Equal(listing.Jobs, replayed.Events.Cast<JobIndex.JobListing>());
    }

    [Fact]
    public async Task Every_stored_row_was_written_by_the_fabric_serializer_under_its_manifest()
    {
        var journalRows = await journal.QueryAsync("SELECT persistence_id, sequence_number, identifier, manifest FROM journal ORDER BY persistence_id, sequence_number");
        var snapshotRows = await journal.QueryAsync("SELECT persistence_id, sequence_number, serializer_id, manifest FROM snapshot ORDER BY persistence_id");

        Assert.All(journalRows.Concat(snapshotRows), r => Assert.Equal(FabricMessageSerializer.SerializerId.ToString(), r[2]));
        Assert.Equal(
        [
            "job-golden-1 17: JobEvents.BuffersLost JobEvents.Completed JobEvents.RunStarted JobEvents.Submitted JobEvents.TaskCompleted " +
            "JobEvents.TaskFailed JobEvents.TaskPlaced JobEvents.TaskRecomputed",
            "job-golden-2 5: JobEvents.Failed JobEvents.RunStarted JobEvents.Submitted JobEvents.TaskFailed JobEvents.TaskPlaced",
            "job-index 2: JobIndex.JobListing",
        ], journalRows.GroupBy(r => r[0]).Select(g =>
            $"{g.Key} {g.Count()}: {string.Join(" ", g.Select(r => r[3]).Distinct().Order(StringComparer.Ordinal))}"));
        Assert.Equal(["job-golden-1 8 JobState", "job-golden-2 5 JobState"], snapshotRows.Select(r => $"{r[0]} {r[1]} {r[3]}"));
        Assert.True(new FileInfo(BuiltPath).Length < 1 << 20, $"{FileName} has grown to {new FileInfo(BuiltPath).Length} bytes");
    }

    private static JobState Fold(string jobId, IEnumerable<object> events) =>
        events.Cast<IJobEvent>().Aggregate(JobState.Empty(jobId), (state, e) => state.Apply(e));

    private static string At(long ms) => $"@{ms - T0}";

    private static string Render(object e) => e switch
    {
        Submitted s => $"Submitted {s.JobId} '{s.Spec.Name}' {At(s.AtMs)}",
        RunStarted r => $"RunStarted {r.Node} {At(r.AtMs)}",
        TaskPlaced p => $"TaskPlaced {p.Task} on {p.Device} #{p.Attempt} {At(p.AtMs)}",
        TaskCompleted c => $"TaskCompleted {c.Task} on {c.Device} #{c.Attempt} in {c.Seconds} s {At(c.AtMs)}",
        TaskRecomputed c => $"TaskRecomputed {c.Task} on {c.Device} #{c.Attempt} in {c.Seconds} s {At(c.AtMs)}",
        TaskFailed f => $"TaskFailed {f.Task} on {f.Device} #{f.Attempt} ({f.Error}) {(f.WillRetry ? "will retry" : "gives up")} {At(f.AtMs)}",
        BuffersLost b => $"BuffersLost {string.Join(",", b.Buffers)} ({b.Reason}) {At(b.AtMs)}",
        Completed c => $"Completed {string.Join(" ", c.Outputs.Select(o => $"{o.Name}={Convert.ToHexStringLower(o.Data)}"))} {At(c.AtMs)}",
        Failed f => $"Failed ({f.Error}) {At(f.AtMs)}",
        _ => $"unexpected {e.GetType().FullName}",
    };

    private static IEnumerable<string> RenderSpec(JobSpec spec) =>
        spec.Buffers.Select(b => $"buffer {b.Name} {b.Size}{RenderInit(b.Init)}{(b.Output ? " output" : "")}")
            .Concat(spec.Tasks.Select(t =>
                $"task {t.Name} needs {t.Needs.MemoryBytes} {t.Needs.Node ?? "any"} {t.Needs.DeviceKind ?? "any"}: " +
                string.Join("; ", t.Steps.Select(s => $"{s.Kernel} {s.Dst} {s.A ?? "-"} {s.B ?? "-"} alpha {s.Alpha} mnk {s.M},{s.N},{s.K} pattern {s.Pattern}"))));

    private static string RenderInit(BufferInit? init) => init switch
    {
        null => "",
        { Kind: InitKind.Inline } => $" inline {Convert.ToHexStringLower(init.Data!)}",
        { Kind: InitKind.RandomFloats } => $" randomFloats seed {init.Seed} scale {init.Scale}",
        { Kind: InitKind.Ramp } => $" ramp scale {init.Scale}",
        _ => $" {JobJson.KindName(init.Kind)}",
    };

    private static IEnumerable<string> RenderState(JobState s) =>
        new[]
        {
            $"{s.JobId} '{s.Spec?.Name}' {s.Status}, {s.Events} events, {s.Runs} runs on {string.Join(" ", s.RunNodes)}, " +
            $"submitted {At(s.SubmittedAtMs)}, finished {(s.FinishedAtMs == 0 ? "not yet" : At(s.FinishedAtMs))}" + (s.Error is { } e ? $", error {e}" : ""),
        }
        .Concat(s.Tasks.Select(t =>
            $"task {t.Name} stage {t.Stage} {t.Status}, {t.Attempts} attempts on {string.Join(" ", t.Placements)}, {t.Completions} completions, " +
            $"{t.Recomputations} recomputations, {t.Seconds} s" + (t.LastError is { } e ? $", last {e}" : "")))
        .Concat(s.Outputs.Select(o => $"output {o.Name} {o.Size}"));

    /// <summary>The golden file copied into a fresh data directory, and a node-like ActorSystem (cluster provider, not joined) on it.</summary>
    public sealed class Journal : IAsyncLifetime
    {
        private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-golden-read-{Guid.NewGuid():N}");
        private PersistenceOptions _options = null!;

        public ActorSystem System { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            if (!File.Exists(BuiltPath))
                throw new FileNotFoundException($"the golden journal is missing: {BuiltPath} (it is Fabric.Tests/Serialization/Golden/{FileName}, copied by the build)");
            _options = PersistenceOptions.Sqlite(_root);
            Directory.CreateDirectory(_root);
            File.Copy(BuiltPath, _options.SqliteFile);
            await _options.EnsureReadyAsync();
            var config = _options.ToConfig().WithFallback(ConfigurationFactory.ParseString("""
                akka.loglevel = WARNING
                akka.actor.provider = cluster
                akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
                akka.cluster.log-info = off
                """));
            System = ActorSystem.Create("golden-journal", FabricDevices.SystemSetup(config));
        }

        public async Task DisposeAsync()
        {
            if (System is not null) await System.Terminate().WaitAsync(Timeout);
            SqliteConnection.ClearAllPools();
            if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
        }

        internal async Task<GoldenJournalActor.Recovered> ReplayAsync(string persistenceId, bool useSnapshots)
        {
            var failed = new TaskCompletionSource<GoldenJournalActor.Recovered>(TaskCreationOptions.RunContinuationsAsynchronously);
            var reader = System.ActorOf(GoldenJournalActor.Props(persistenceId, useSnapshots, cause => failed.TrySetException(
                new InvalidOperationException($"{persistenceId} no longer recovers from the golden journal: stored journals would not either. {cause.Message}", cause))));
            try
            {
                var recovered = reader.Ask<GoldenJournalActor.Recovered>(new GoldenJournalActor.GetRecovered(), Timeout);
                return await await Task.WhenAny(recovered, failed.Task);
            }
            finally { reader.Tell(PoisonPill.Instance); }
        }

        /// <summary>The rows of <paramref name="sql"/>, every column as text.</summary>
        public async Task<ImmutableArray<string[]>> QueryAsync(string sql)
        {
            await using var connection = new SqliteConnection(_options.EffectiveConnectionString);
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            await using var reader = await command.ExecuteReaderAsync();
            var rows = ImmutableArray.CreateBuilder<string[]>();
            while (await reader.ReadAsync())
                rows.Add([.. Enumerable.Range(0, reader.FieldCount).Select(i => Convert.ToString(reader.GetValue(i)) ?? "")]);
            return rows.ToImmutable();
        }
    }
}

/// <summary>
/// Writes <c>Golden/journal.db</c> in the source tree, only when <see cref="GoldenJournal.WriteVariable"/> is 1 (otherwise
/// skipped): <c>FABRIC_WRITE_GOLDEN_JOURNAL=1 dotnet test Fabric.Tests --filter FullyQualifiedName~Write_the_golden_journal</c>.
/// </summary>
public sealed class GoldenJournalWriterTests
{
    [WritesGoldenJournalFact]
    public async Task Write_the_golden_journal()
    {
        var target = SourcePath();

        await WriteAsync(target);

        await using var connection = new SqliteConnection($"Data Source={target};Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM journal";
        Assert.Equal(CompletedHistory().Length + FailedHistory().Length + Listings().Length, Convert.ToInt32(await command.ExecuteScalarAsync()));
        Assert.True(new FileInfo(target).Length < 1 << 20, $"{target} is {new FileInfo(target).Length} bytes");
    }
}

/// <summary>A fact that runs only when <see cref="GoldenJournal.WriteVariable"/> is 1, and reports as skipped otherwise.</summary>
internal sealed class WritesGoldenJournalFactAttribute : FactAttribute
{
    public WritesGoldenJournalFactAttribute()
    {
        if (Environment.GetEnvironmentVariable(WriteVariable) != "1")
            Skip = $"writes the golden journal only when {WriteVariable}=1 (it is checked in; regenerate it only to add to it)";
    }
}
