using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Node.Jobs;
using Microsoft.Data.Sqlite;

namespace Fabric.Node.Chaos;

/// <summary>One persisted event of a job, as its journal row holds it.</summary>
public sealed record JournalEntry(long Sequence, JobEvents.IJobEvent Event);

/// <summary>
/// Reads the jobs' histories straight from the cluster's SQLite journal (the rows Akka.Persistence.Sql wrote), decoded
/// with the Fabric serializer: what was really persisted, not what a node says.
/// </summary>
public static class ChaosJournal
{
    public static async Task<ImmutableDictionary<string, ImmutableArray<JournalEntry>>> ReadJobsAsync(string sqlitePath, ActorSystem system,
        CancellationToken cancel)
    {
        var histories = new Dictionary<string, List<JournalEntry>>();
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = sqlitePath, Mode = SqliteOpenMode.ReadOnly }.ToString());
        await connection.OpenAsync(cancel);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT persistence_id, sequence_number, message, manifest, identifier FROM journal
            WHERE persistence_id LIKE 'job-%' AND persistence_id <> 'job-index' AND deleted = 0
            ORDER BY persistence_id, sequence_number
            """;
        await using var reader = await command.ExecuteReaderAsync(cancel);
        while (await reader.ReadAsync(cancel))
        {
            var jobId = reader.GetString(0)["job-".Length..];
            var payload = (byte[])reader.GetValue(2);
            var message = system.Serialization.Deserialize(payload, reader.GetInt32(4), reader.IsDBNull(3) ? "" : reader.GetString(3));
            if (message is not JobEvents.IJobEvent e) continue;
            if (!histories.TryGetValue(jobId, out var list)) histories[jobId] = list = [];
            list.Add(new JournalEntry(reader.GetInt64(1), e));
        }
        return histories.ToImmutableDictionary(kv => kv.Key, kv => kv.Value.ToImmutableArray());
    }
}
