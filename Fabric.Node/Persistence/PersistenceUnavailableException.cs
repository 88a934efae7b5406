namespace Fabric.Node.Persistence;

/// <summary>The configured database cannot be reached or prepared; the message names the provider and the target.</summary>
public sealed class PersistenceUnavailableException(PersistenceOptions options, Exception inner)
    : Exception($"{NameOf(options.Provider)} persistence at {options.Target} is not available: {inner.Message}", inner)
{
    public PersistenceProvider Provider { get; } = options.Provider;

    private static string NameOf(PersistenceProvider provider) =>
        provider == PersistenceProvider.PostgreSql ? "PostgreSQL" : "SQLite";
}
