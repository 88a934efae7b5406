using System.Data.Common;
using System.Text;
using Akka.Configuration;
using Akka.Persistence.Sql;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Fabric.Node.Persistence;

/// <summary>
/// The one place that configures Akka.Persistence for Fabric: Akka.Persistence.Sql as journal and snapshot store, on
/// SQLite or PostgreSQL. Tables are created on first use. Events and snapshots that implement
/// <see cref="Fabric.Core.IFabricMessage"/> are written by the Fabric MessagePack serializer (the binding that
/// <see cref="Fabric.Core.Serialization.FabricSerialization.Setup"/> adds to the ActorSystem), so rows carry its
/// serializer id and short manifest, never a CLR type name.
/// </summary>
public static class FabricPersistence
{
    public const string JournalPluginId = "akka.persistence.journal.sql";
    public const string SnapshotStorePluginId = "akka.persistence.snapshot-store.sql";
    public const string QueryJournalPluginId = "akka.persistence.query.journal.sql";

    /// <summary>linq2db's provider names, as Akka.Persistence.Sql expects them.</summary>
    public const string SqliteProviderName = "SQLite.MS";
    public const string PostgreSqlProviderName = "PostgreSQL.15";

    /// <summary>
    /// The journal, snapshot store and query journal configuration for these options, with
    /// Akka.Persistence.Sql's defaults as fallback. Pure: it touches no database (see <see cref="EnsureReadyAsync"/>).
    /// </summary>
    public static Config ToConfig(this PersistenceOptions options)
    {
        options.Validate();
        var connection = Quote(options.EffectiveConnectionString);
        var provider = Quote(ProviderName(options.Provider));
        // table-mapping "default": the plugin's own schema (tables journal, tags, journal_metadata, snapshot).
        // serializer = null: each payload goes to the serializer bound to its type (IFabricMessage → fabric).
        var hocon = $$"""
            akka.persistence {
              journal {
                plugin = "{{JournalPluginId}}"
                sql {
                  connection-string = {{connection}}
                  provider-name = {{provider}}
                  table-mapping = default
                  auto-initialize = on
                  serializer = null
                }
              }
              snapshot-store {
                plugin = "{{SnapshotStorePluginId}}"
                sql {
                  connection-string = {{connection}}
                  provider-name = {{provider}}
                  table-mapping = default
                  auto-initialize = on
                  serializer = null
                }
              }
              query.journal.sql {
                write-plugin = "{{JournalPluginId}}"
                connection-string = {{connection}}
                provider-name = {{provider}}
                table-mapping = default
              }
            }
            """;
        return ConfigurationFactory.ParseString(hocon).WithFallback(SqlPersistence.DefaultConfiguration);
    }

    /// <summary>
    /// Prepares and checks the database before an ActorSystem uses it. SQLite: creates the data directory when
    /// missing and switches the file to write-ahead logging (<c>PRAGMA journal_mode=WAL</c>, kept by the file), so
    /// several processes can share it. PostgreSQL: opens a connection and runs a query. Throws
    /// <see cref="PersistenceUnavailableException"/> naming the provider and the target when the database cannot
    /// be reached.
    /// </summary>
    public static async Task EnsureReadyAsync(this PersistenceOptions options, CancellationToken cancellationToken = default)
    {
        options.Validate();
        try
        {
            switch (options.Provider)
            {
                case PersistenceProvider.Sqlite:
                    await PrepareSqliteAsync(options, cancellationToken);
                    break;
                case PersistenceProvider.PostgreSql:
                    await CheckPostgreSqlAsync(options, cancellationToken);
                    break;
            }
        }
        catch (Exception e) when (e is DbException or IOException or UnauthorizedAccessException or TimeoutException
                                      or InvalidOperationException)
        {
            throw new PersistenceUnavailableException(options, e);
        }
    }

    private static async Task PrepareSqliteAsync(PersistenceOptions options, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(options.SqliteFile)!);
        await using var connection = new SqliteConnection(options.EffectiveConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode=WAL;";
        var mode = (string?)await command.ExecuteScalarAsync(cancellationToken);
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"the file refused write-ahead logging (journal_mode is '{mode}')");
    }

    private static async Task CheckPostgreSqlAsync(PersistenceOptions options, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(options.EffectiveConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand("SELECT 1", connection);
        await command.ExecuteScalarAsync(cancellationToken);
    }

    private static string ProviderName(PersistenceProvider provider) => provider switch
    {
        PersistenceProvider.Sqlite => SqliteProviderName,
        PersistenceProvider.PostgreSql => PostgreSqlProviderName,
        _ => throw new ArgumentOutOfRangeException(nameof(provider), provider, "unknown persistence provider"),
    };

    /// <summary>A HOCON quoted string: backslashes, quotes and control characters escaped.</summary>
    private static string Quote(string value)
    {
        var quoted = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': quoted.Append("\\\""); break;
                case '\\': quoted.Append("\\\\"); break;
                case '\n': quoted.Append("\\n"); break;
                case '\r': quoted.Append("\\r"); break;
                case '\t': quoted.Append("\\t"); break;
                default:
                    if (char.IsControl(c)) quoted.Append($"\\u{(int)c:x4}");
                    else quoted.Append(c);
                    break;
            }
        }
        return quoted.Append('"').ToString();
    }
}
