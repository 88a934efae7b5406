using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Devices;
using Fabric.Node.Jobs;
using Fabric.Node.Persistence;
using Microsoft.Data.Sqlite;
using static Fabric.Node.Jobs.JobEvents;

namespace Fabric.Tests.Serialization;

/// <summary>
/// What <c>Golden/journal.db</c> holds and how it was written: a SQLite journal and snapshot store, written through
/// Akka.Persistence.Sql with the Fabric serializer exactly as a node writes its own. Two jobs under the persistence ids
/// their entities use — <c>job-golden-1</c>, completed after a retried task, a lost buffer and a second run (snapshot
/// after event 8), and <c>job-golden-2</c>, failed (snapshot after its last event, as the entity takes one) — and the
/// job index (<c>job-index</c>, written by the real <see cref="JobIndex"/> actor). Every job event type of that build appears (JobEvents.Cancelled came later: its round trip is in MessageRoundTripTests).
/// <para>
/// The file is evidence of what an earlier build wrote: <see cref="GoldenJournalTests"/> must keep reading it.
/// Regenerate it only to add what it holds, never to make those tests pass:
/// <c>FABRIC_WRITE_GOLDEN_JOURNAL=1 dotnet test Fabric.Tests --filter FullyQualifiedName~Write_the_golden_journal</c>.
/// </para>
/// </summary>
internal static class GoldenJournal
{
    public const string WriteVariable = "FABRIC_WRITE_GOLDEN_JOURNAL";
    public const string FileName = "journal.db";
    public const string CompletedJob = "golden-1";
    public const string FailedJob = "golden-2";
    public const long SnapshotAfter = 8;

    /// <summary>Every timestamp of the history is this plus a few milliseconds.</summary>
    public const long T0 = 1_700_000_000_000;

    public const string FirstNode = "akka.tcp://fabric@10.0.0.1:4053";
    public const string SecondNode = "akka.tcp://fabric@10.0.0.2:4053";

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Four tasks over inline, random and ramp inputs; every kernel parameter (alpha, m/n/k, pattern, needs) in use.</summary>
    public static JobSpec CompletedSpec() => new JobBuilder("golden")
        .Input("a", [1f, 2f, 3f, 4f])
        .RandomInput("b", 4, seed: 7, scale: 0.5f)
        .Ramp("c", 4, scale: 2f)
        .Buffer("u", 16).Buffer("v", 16)
        .Output("s", 16).Output("crc", 4).Output("m", 8)
        .Task("left", t => t.MatMul("u", "a", "b", 2, 2, 2))
        .Task("right", t => t.Axpy("v", "c", "b", 0.5f), new TaskNeeds(0, null, "gpu-small"))
        .Task("combine", t => t.Add("s", "u", "v").Checksum("crc", "s"), new TaskNeeds(1 << 20, "node-b", null))
        .Task("mark", t => t.Fill("m", 0xDEADBEEF))
        .Build();

    public static JobSpec FailedSpec() => new JobBuilder("golden-failing")
        .Zeros("z", 8)
        .Output("o", 8)
        .Task("copy", t => t.Copy("o", "z"))
        .Build();

    public static readonly byte[] OutputS = [0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64];
    public static readonly byte[] OutputCrc = [0x12, 0x34, 0x56, 0x78];
    public static readonly byte[] OutputM = [0xEF, 0xBE, 0xAD, 0xDE, 0xEF, 0xBE, 0xAD, 0xDE];

    public static ImmutableArray<IJobEvent> CompletedHistory()
    {
        DeviceId A(int i) => new("node-a", i);
        DeviceId B(int i) => new("node-b", i);
        return
        [
            new Submitted(CompletedJob, CompletedSpec(), T0),
            new RunStarted(FirstNode, T0 + 10),
            new TaskPlaced("left", A(0), 1, T0 + 20),
            new TaskPlaced("right", B(1), 1, T0 + 21),
            new TaskPlaced("mark", A(1), 1, T0 + 22),
            new TaskFailed("right", B(1), 1, new FabricError(ErrorCode.EBUSY, "device node-b/dev1 is resetting"), WillRetry: true, T0 + 30),
            new TaskCompleted("left", A(0), 1, 0.125, T0 + 40),
            new TaskCompleted("mark", A(1), 1, 0.0625, T0 + 41),
            // snapshot here (SnapshotAfter)
            new TaskPlaced("right", B(0), 2, T0 + 50),
            new TaskCompleted("right", B(0), 2, 0.25, T0 + 60),
            new BuffersLost(["u"], "node node-a was lost", T0 + 70),
            new RunStarted(SecondNode, T0 + 80),
            new TaskPlaced("left", B(1), 2, T0 + 90),
            new TaskRecomputed("left", B(1), 2, 0.5, T0 + 100),
            new TaskPlaced("combine", B(0), 1, T0 + 110),
            new TaskCompleted("combine", B(0), 1, 1.5, T0 + 120),
            new Completed([new JobOutput("crc", OutputCrc, 4), new JobOutput("m", OutputM, 8), new JobOutput("s", OutputS, 16)], T0 + 130),
        ];
    }

    public static ImmutableArray<IJobEvent> FailedHistory()
    {
        var device = new DeviceId("node-a", 0);
        var fault = new FabricError(ErrorCode.EFAULT, "node-a/dev0 faulted at IOVA 0x10000 (unmapped)");
        return
        [
            new Submitted(FailedJob, FailedSpec(), T0 + 1000),
            new RunStarted(FirstNode, T0 + 1010),
            new TaskPlaced("copy", device, 1, T0 + 1020),
            new TaskFailed("copy", device, 1, fault, WillRetry: false, T0 + 1030),
            new Failed(new FabricError(ErrorCode.EFAULT, "task copy failed: " + fault.Message), T0 + 1040),
        ];
    }

    public static ImmutableArray<JobIndex.JobListing> Listings() =>
    [
        new(CompletedJob, "golden", T0 - 5),
        new(FailedJob, "golden-failing", T0 + 995),
    ];

    /// <summary>The checked-in file beside this source file.</summary>
    public static string SourcePath([CallerFilePath] string thisFile = "") =>
        Path.Combine(Path.GetDirectoryName(thisFile)!, "Golden", FileName);

    /// <summary>The copy the build puts beside the test assembly.</summary>
    public static string BuiltPath => Path.Combine(AppContext.BaseDirectory, "Serialization", "Golden", FileName);

    /// <summary>
    /// Writes the golden journal to <paramref name="target"/>: in a fresh data directory as a node would, then checkpointed,
    /// switched back to a single file (no write-ahead log) and vacuumed.
    /// </summary>
    public static async Task WriteAsync(string target)
    {
        var root = Path.Combine(Path.GetTempPath(), $"fabric-golden-write-{Guid.NewGuid():N}");
        try
        {
            var options = PersistenceOptions.Sqlite(root);
            await options.EnsureReadyAsync();
            var config = options.ToConfig().WithFallback(ConfigurationFactory.ParseString("akka.loglevel = WARNING"));
            var system = ActorSystem.Create("golden-journal", FabricDevices.SystemSetup(config));
            try
            {
                await WriteJobAsync(system, CompletedJob, CompletedHistory(), snapshotAfter: SnapshotAfter);
                await WriteJobAsync(system, FailedJob, FailedHistory(), snapshotAfter: FailedHistory().Length);
                var index = system.ActorOf(JobIndex.Props());
                foreach (var listing in Listings())
                    await index.Ask<JobIndex.ContextAck>(new JobIndex.Add(listing), Timeout);
            }
            finally
            {
                await system.Terminate().WaitAsync(Timeout);
            }

            SqliteConnection.ClearAllPools(); // the plugins' pooled connections would keep the file in write-ahead mode
            await using (var connection = new SqliteConnection(options.EffectiveConnectionString))
            {
                await connection.OpenAsync();
                foreach (var sql in new[] { "PRAGMA wal_checkpoint(TRUNCATE);", "PRAGMA journal_mode=DELETE;", "VACUUM;" })
                {
                    await using var command = connection.CreateCommand();
                    command.CommandText = sql;
                    await command.ExecuteNonQueryAsync();
                }
            }
            SqliteConnection.ClearAllPools();
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(options.SqliteFile, target, overwrite: true);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>Persists the history under the job entity's persistence id, with a snapshot of the folded state after event <paramref name="snapshotAfter"/>.</summary>
    private static async Task WriteJobAsync(ActorSystem system, string jobId, ImmutableArray<IJobEvent> history, long snapshotAfter)
    {
        var writer = system.ActorOf(GoldenJournalActor.Props($"job-{jobId}", useSnapshots: true));
        var state = JobState.Empty(jobId);
        foreach (var e in history)
        {
            var written = await writer.Ask<GoldenJournalActor.Written>(new GoldenJournalActor.Write(e), Timeout);
            state = state.Apply(e);
            if (written.SequenceNr == snapshotAfter)
                await writer.Ask<GoldenJournalActor.SnapshotSaved>(new GoldenJournalActor.Snapshot(state), Timeout);
        }
        await writer.GracefulStop(Timeout);
    }
}

/// <summary>
/// A plain persistent actor under any persistence id: persists what it is given (<see cref="Write"/>,
/// <see cref="Snapshot"/>) and tells what its recovery read (<see cref="GetRecovered"/>). With
/// <c>useSnapshots</c> false it replays every event from the first, ignoring snapshots.
/// </summary>
internal sealed class GoldenJournalActor : ReceivePersistentActor
{
    /// <param name="recoveryFailed">Called with the cause when recovery fails (the actor then stops without a word).</param>
    public static Props Props(string persistenceId, bool useSnapshots, Action<Exception>? recoveryFailed = null) =>
        Akka.Actor.Props.Create(() => new GoldenJournalActor(persistenceId, useSnapshots, recoveryFailed));

    public sealed record Write(IFabricMessage Event);
    public sealed record Written(long SequenceNr);
    public sealed record Snapshot(IFabricMessage State);
    public sealed record SnapshotSaved(long SequenceNr);
    public sealed record GetRecovered;

    /// <param name="SnapshotSequenceNr">The sequence number of the snapshot recovery started from (0: none).</param>
    public sealed record Recovered(long SnapshotSequenceNr, object? Snapshot, ImmutableArray<object> Events, long LastSequenceNr);

    private readonly bool _useSnapshots;
    private readonly Action<Exception>? _recoveryFailed;
    private long _snapshotSequenceNr;
    private object? _snapshot;
    private ImmutableArray<object> _events = [];
    private IActorRef? _awaitingSnapshot;

    public GoldenJournalActor(string persistenceId, bool useSnapshots, Action<Exception>? recoveryFailed)
    {
        PersistenceId = persistenceId;
        _useSnapshots = useSnapshots;
        _recoveryFailed = recoveryFailed;

        Recover<SnapshotOffer>(offer =>
        {
            _snapshotSequenceNr = offer.Metadata.SequenceNr;
            _snapshot = offer.Snapshot;
        });
        Recover<IFabricMessage>(e => _events = _events.Add(e));

        Command<Write>(m =>
        {
            var replyTo = Sender;
            Persist(m.Event, _ => replyTo.Tell(new Written(LastSequenceNr)));
        });
        Command<Snapshot>(m =>
        {
            _awaitingSnapshot = Sender;
            SaveSnapshot(m.State);
        });
        Command<SaveSnapshotSuccess>(s =>
        {
            _awaitingSnapshot?.Tell(new SnapshotSaved(s.Metadata.SequenceNr));
            _awaitingSnapshot = null;
        });
        Command<SaveSnapshotFailure>(f =>
        {
            _awaitingSnapshot?.Tell(new Status.Failure(f.Cause));
            _awaitingSnapshot = null;
        });
        Command<GetRecovered>(_ => Sender.Tell(new Recovered(_snapshotSequenceNr, _snapshot, _events, LastSequenceNr)));
    }

    public override string PersistenceId { get; }

    public override Recovery Recovery => _useSnapshots ? base.Recovery : new Recovery(SnapshotSelectionCriteria.None);

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _recoveryFailed?.Invoke(reason);
        base.OnRecoveryFailure(reason, message);
    }
}
