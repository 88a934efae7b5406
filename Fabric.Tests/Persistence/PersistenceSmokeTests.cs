using System.Collections.Immutable;
using System.Data.Common;
using Akka.Actor;
using Akka.Configuration;
using Fabric.Core.Serialization;
using Fabric.Devices;
using Fabric.Node.Persistence;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Fabric.Tests.Persistence;

public sealed class PersistenceSmokeTests
{
    /// <summary>Set by ./test.sh after scripts/ensure-postgres.sh has the local server running.</summary>
    public const string PostgresVariable = "FABRIC_TEST_POSTGRES";

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Sqlite_file_keeps_events_and_snapshot_for_a_new_actor_system()
    {
        var root = Path.Combine(Path.GetTempPath(), $"fabric-persistence-{Guid.NewGuid():N}");
        try
        {
            var options = PersistenceOptions.Sqlite(Path.Combine(root, "data"));

            await options.EnsureReadyAsync();

            Assert.True(File.Exists(Path.Combine(root, "data", PersistenceOptions.DefaultSqliteFileName)));
            Assert.Equal("wal", await ScalarAsync(options, "PRAGMA journal_mode;"));
            await Persist_then_recover_in_a_new_actor_system(options);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task PostgreSql_keeps_events_and_snapshot_for_a_new_actor_system()
    {
        var connectionString = Environment.GetEnvironmentVariable(PostgresVariable);
        if (string.IsNullOrWhiteSpace(connectionString))
            Assert.Fail($"{PostgresVariable} is not set: run ./test.sh, which installs and starts the local PostgreSQL " +
                        "server (scripts/ensure-postgres.sh) and sets it.");
        var options = PersistenceOptions.PostgreSql(connectionString);

        await options.EnsureReadyAsync();

        await Persist_then_recover_in_a_new_actor_system(options);
    }

    [Fact]
    public async Task EnsureReady_names_provider_and_target_when_PostgreSql_is_unreachable()
    {
        var options = PersistenceOptions.PostgreSql("Host=127.0.0.1;Port=1;Username=nobody;Password=not-shown;Database=nothing;Timeout=5");

        var error = await Assert.ThrowsAsync<PersistenceUnavailableException>(() => options.EnsureReadyAsync());

        Assert.StartsWith("PostgreSQL persistence at 127.0.0.1:1/nothing as nobody is not available: ", error.Message);
        Assert.DoesNotContain("not-shown", error.Message);
    }

    [Fact]
    public async Task EnsureReady_names_provider_and_file_when_the_data_directory_cannot_be_made()
    {
        var blocker = Path.GetTempFileName();
        try
        {
            var options = PersistenceOptions.Sqlite(Path.Combine(blocker, "data"));

            var error = await Assert.ThrowsAsync<PersistenceUnavailableException>(() => options.EnsureReadyAsync());

            Assert.StartsWith($"SQLite persistence at {Path.Combine(blocker, "data", "fabric.db")} is not available: ", error.Message);
        }
        finally { File.Delete(blocker); }
    }

    public static TheoryData<string, Func<PersistenceOptions>> InvalidOptions => new()
    {
        { "DataDirectory", () => PersistenceOptions.Sqlite(" ") },
        { "SqliteFileName", () => (PersistenceOptions.Sqlite("/tmp/x") with { SqliteFileName = "a/b.db" }).Validate() },
        { "ConnectionString", () => (PersistenceOptions.Sqlite("/tmp/x") with { ConnectionString = "Data Source=y" }).Validate() },
        { "ConnectionString", () => PersistenceOptions.PostgreSql("") },
        { "ConnectionString", () => PersistenceOptions.PostgreSql("Database=fabric") },
        { "ConnectionString", () => PersistenceOptions.PostgreSql("Hots=127.0.0.1") },
        { "DataDirectory", () => (PersistenceOptions.PostgreSql("Host=h") with { DataDirectory = "/tmp/x" }).Validate() },
        { "Provider", () => (PersistenceOptions.Sqlite("/tmp/x") with { Provider = (PersistenceProvider)7 }).Validate() },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Invalid_options_are_refused_naming_the_field(string field, Func<PersistenceOptions> make)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => make());

        Assert.Equal(field, error.ParamName);
    }

    [Fact]
    public void Config_selects_the_sql_plugins_with_the_connection_string_unchanged()
    {
        const string connectionString = """Host=db.example;Username=fabric;Password='q"uo\te';Database=fabric""";

        var config = PersistenceOptions.PostgreSql(connectionString).ToConfig();

        Assert.Equal(FabricPersistence.JournalPluginId, config.GetString("akka.persistence.journal.plugin"));
        Assert.Equal(FabricPersistence.SnapshotStorePluginId, config.GetString("akka.persistence.snapshot-store.plugin"));
        foreach (var plugin in new[] { FabricPersistence.JournalPluginId, FabricPersistence.SnapshotStorePluginId, FabricPersistence.QueryJournalPluginId })
        {
            Assert.Equal(connectionString, config.GetString($"{plugin}.connection-string"));
            Assert.Equal("PostgreSQL.15", config.GetString($"{plugin}.provider-name"));
        }
        Assert.Equal("Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql", config.GetString($"{FabricPersistence.JournalPluginId}.class"));
    }

    /// <summary>
    /// Persists 1..5, snapshots, persists 10, 20, 30; terminates the ActorSystem; a new one recovers from the snapshot
    /// plus the three later events. Then reads the stored rows: every one written by the Fabric serializer.
    /// </summary>
    private static async Task Persist_then_recover_in_a_new_actor_system(PersistenceOptions options)
    {
        var persistenceId = $"smoke-{Guid.NewGuid():N}";
        var config = options.ToConfig().WithFallback(ConfigurationFactory.ParseString("akka.loglevel = WARNING"));

        var first = ActorSystem.Create("persistence-smoke", FabricDevices.SystemSetup(config));
        SmokeLedger.CurrentState written;
        try
        {
            var ledger = first.ActorOf(SmokeLedger.Props(persistenceId));
            foreach (var amount in new[] { 1, 2, 3, 4, 5 })
                Assert.Equal(new SmokeLedger.Added(amount), await ledger.Ask<SmokeLedger.Added>(new SmokeLedger.Add(amount), Timeout));
            var saved = await ledger.Ask<SmokeLedger.SnapshotSaved>(new SmokeLedger.TakeSnapshot(), Timeout);
            Assert.Equal(5, saved.SequenceNr);
            foreach (var amount in new[] { 10, 20, 30 })
                await ledger.Ask<SmokeLedger.Added>(new SmokeLedger.Add(amount), Timeout);
            written = await ledger.Ask<SmokeLedger.CurrentState>(new SmokeLedger.GetState(), Timeout);
        }
        finally
        {
            await first.Terminate().WaitAsync(Timeout);
        }
        Assert.Equal((75L, 8, 8L, 0L, 0), (written.Sum, written.Count, written.LastSequenceNr, written.RecoveredSnapshotSeqNr, written.ReplayedEvents));
        Assert.Equal([10, 20, 30], written.SinceSnapshot.ToArray());

        var second = ActorSystem.Create("persistence-smoke", FabricDevices.SystemSetup(config));
        try
        {
            var ledger = second.ActorOf(SmokeLedger.Props(persistenceId));

            var recovered = await ledger.Ask<SmokeLedger.CurrentState>(new SmokeLedger.GetState(), Timeout);

            Assert.Equal((75L, 8, 8L, 5L, 3), (recovered.Sum, recovered.Count, recovered.LastSequenceNr, recovered.RecoveredSnapshotSeqNr, recovered.ReplayedEvents));
            Assert.Equal([10, 20, 30], recovered.SinceSnapshot.ToArray());

            var journal = await RowsAsync(options,
                "SELECT sequence_number, identifier, manifest, message FROM journal WHERE persistence_id = @id ORDER BY sequence_number",
                persistenceId);
            Assert.Equal([1L, 2, 3, 4, 5, 6, 7, 8], journal.Select(r => r.SequenceNr));
            Assert.All(journal, r => Assert.Equal((FabricMessageSerializer.SerializerId, "SmokeLedger.Added"), (r.SerializerId, r.Manifest)));
            Assert.Equal([1, 2, 3, 4, 5, 10, 20, 30], journal.Select(r => ((SmokeLedger.Added)Decode(second, r)).Amount));

            var snapshots = await RowsAsync(options,
                "SELECT sequence_number, serializer_id, manifest, snapshot FROM snapshot WHERE persistence_id = @id ORDER BY sequence_number",
                persistenceId);
            var snapshot = Assert.Single(snapshots);
            Assert.Equal((5L, FabricMessageSerializer.SerializerId, "SmokeLedger.Snapshot"), (snapshot.SequenceNr, snapshot.SerializerId, snapshot.Manifest));
            Assert.Equal(new SmokeLedger.Snapshot(15, 5), Decode(second, snapshot));
        }
        finally
        {
            await second.Terminate().WaitAsync(Timeout);
        }
    }

    private sealed record StoredRow(long SequenceNr, int SerializerId, string Manifest, byte[] Payload);

    private static object Decode(ActorSystem system, StoredRow row) =>
        system.Serialization.Deserialize(row.Payload, row.SerializerId, row.Manifest);

    private static DbConnection Connect(PersistenceOptions options) => options.Provider switch
    {
        PersistenceProvider.Sqlite => new SqliteConnection(options.EffectiveConnectionString),
        _ => new NpgsqlConnection(options.EffectiveConnectionString),
    };

    private static async Task<ImmutableArray<StoredRow>> RowsAsync(PersistenceOptions options, string sql, string persistenceId)
    {
        await using var connection = Connect(options);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var parameter = command.CreateParameter();
        parameter.ParameterName = "id";
        parameter.Value = persistenceId;
        command.Parameters.Add(parameter);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = ImmutableArray.CreateBuilder<StoredRow>();
        while (await reader.ReadAsync())
            rows.Add(new StoredRow(
                Convert.ToInt64(reader.GetValue(0)), Convert.ToInt32(reader.GetValue(1)), reader.GetString(2), (byte[])reader.GetValue(3)));
        return rows.ToImmutable();
    }

    private static async Task<string?> ScalarAsync(PersistenceOptions options, string sql)
    {
        await using var connection = Connect(options);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToString(await command.ExecuteScalarAsync());
    }
}
