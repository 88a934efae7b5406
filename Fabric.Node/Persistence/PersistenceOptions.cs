using Microsoft.Data.Sqlite;
using Npgsql;

namespace Fabric.Node.Persistence;

/// <summary>The database that holds a node's journal and snapshots.</summary>
public enum PersistenceProvider
{
    /// <summary>One SQLite file on local disk (<see cref="PersistenceOptions.DataDirectory"/>): one machine.</summary>
    Sqlite,

    /// <summary>A PostgreSQL server (<see cref="PersistenceOptions.ConnectionString"/>): shared by several nodes.</summary>
    PostgreSql,
}

/// <summary>
/// Where a node keeps its journal and snapshots. Build one with <see cref="Sqlite"/> or <see cref="PostgreSql"/>;
/// <see cref="FabricPersistence.ToConfig"/> turns it into Akka configuration and
/// <see cref="FabricPersistence.EnsureReadyAsync"/> prepares and checks the database.
/// </summary>
public sealed record PersistenceOptions
{
    /// <summary>The SQLite file's name inside <see cref="DataDirectory"/> unless <see cref="SqliteFileName"/> says otherwise.</summary>
    public const string DefaultSqliteFileName = "fabric.db";

    public PersistenceProvider Provider { get; init; }

    /// <summary>The Npgsql connection string (PostgreSQL only), e.g. <c>Host=127.0.0.1;Username=…;Password=…;Database=…</c>.</summary>
    public string? ConnectionString { get; init; }

    /// <summary>The directory of the SQLite file (SQLite only); created at start when missing.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>The SQLite file's name inside <see cref="DataDirectory"/>: a plain file name, no directories.</summary>
    public string SqliteFileName { get; init; } = DefaultSqliteFileName;

    public static PersistenceOptions Sqlite(string dataDirectory) =>
        new PersistenceOptions { Provider = PersistenceProvider.Sqlite, DataDirectory = dataDirectory }.Validate();

    public static PersistenceOptions PostgreSql(string connectionString) =>
        new PersistenceOptions { Provider = PersistenceProvider.PostgreSql, ConnectionString = connectionString }.Validate();

    /// <summary>The absolute path of the SQLite file.</summary>
    public string SqliteFile => Path.GetFullPath(Path.Combine(Require(DataDirectory, nameof(DataDirectory)), SqliteFileName));

    /// <summary>The ADO.NET connection string the journal and snapshot store use.</summary>
    public string EffectiveConnectionString => Provider switch
    {
        PersistenceProvider.Sqlite => new SqliteConnectionStringBuilder { DataSource = SqliteFile }.ConnectionString,
        _ => Require(ConnectionString, nameof(ConnectionString)),
    };

    /// <summary>What the database is, for messages: the SQLite file, or host:port/database as user (never a password).</summary>
    public string Target
    {
        get
        {
            if (Provider == PersistenceProvider.Sqlite) return SqliteFile;
            var pg = new NpgsqlConnectionStringBuilder(ConnectionString);
            return $"{pg.Host}:{pg.Port}/{pg.Database ?? pg.Username} as {pg.Username}";
        }
    }

    /// <summary>Returns these options when they are usable; otherwise throws an <see cref="ArgumentException"/> naming the field.</summary>
    public PersistenceOptions Validate()
    {
        switch (Provider)
        {
            case PersistenceProvider.Sqlite:
                if (string.IsNullOrWhiteSpace(DataDirectory))
                    throw new ArgumentException("SQLite persistence needs a data directory", nameof(DataDirectory));
                if (DataDirectory.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
                    throw new ArgumentException($"'{DataDirectory}' is not a valid directory path", nameof(DataDirectory));
                if (string.IsNullOrWhiteSpace(SqliteFileName) || SqliteFileName.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0
                    || SqliteFileName is "." or "..")
                    throw new ArgumentException($"'{SqliteFileName}' is not a plain file name", nameof(SqliteFileName));
                if (!string.IsNullOrEmpty(ConnectionString))
                    throw new ArgumentException("SQLite persistence takes a data directory, not a connection string", nameof(ConnectionString));
                break;
            case PersistenceProvider.PostgreSql:
                if (string.IsNullOrWhiteSpace(ConnectionString))
                    throw new ArgumentException("PostgreSQL persistence needs a connection string", nameof(ConnectionString));
                NpgsqlConnectionStringBuilder pg;
                try { pg = new NpgsqlConnectionStringBuilder(ConnectionString); }
                catch (Exception e) when (e is ArgumentException or FormatException or KeyNotFoundException)
                {
                    throw new ArgumentException($"not a valid PostgreSQL connection string: {e.Message}", nameof(ConnectionString), e);
                }
                if (string.IsNullOrWhiteSpace(pg.Host))
                    throw new ArgumentException("the PostgreSQL connection string names no Host", nameof(ConnectionString));
                if (!string.IsNullOrEmpty(DataDirectory))
                    throw new ArgumentException("PostgreSQL persistence takes a connection string, not a data directory", nameof(DataDirectory));
                break;
            default:
                throw new ArgumentException($"unknown persistence provider {(int)Provider}", nameof(Provider));
        }
        return this;
    }

    /// <summary>The options without secrets, for logs.</summary>
    public override string ToString() => $"{Provider} at {Target}";

    private static string Require(string? value, string name) =>
        string.IsNullOrWhiteSpace(value) ? throw new ArgumentException($"{name} is not set", name) : value;
}
