using System.Diagnostics;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Fabric.Node.Cli;
using Fabric.Node.Jobs;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>Three real <c>fabric node</c> processes on 127.0.0.1 forming one cluster, torn down (SIGKILL) at the end.</summary>
public class ClusterFixture : IAsyncLifetime
{
    public const int Size = 3;
    private static readonly TimeSpan FormationTimeout = TimeSpan.FromSeconds(90);

    public List<Member> Members { get; } = [];
    public string DataRoot { get; } = Path.Combine(Path.GetTempPath(), $"fabric-test-{Guid.NewGuid():N}");

    public sealed record Member(string Name, int Port, int HttpPort, FabricProcess Process)
    {
        public string Endpoint => $"127.0.0.1:{Port}";
        public string Gateway => $"http://127.0.0.1:{HttpPort}";
    }

    public virtual async Task InitializeAsync()
    {
        // Every node binds ports of the system's choosing and says which in its ready file: n1 founds the cluster, the
        // others get its address as seed.
        Members.Add(await StartAsync("n1", seed: null));
        Members.AddRange(await Task.WhenAll(Enumerable.Range(2, Size - 1).Select(i => StartAsync($"n{i}", Members[0].Endpoint))));
        var clock = Stopwatch.StartNew();
        foreach (var member in Members)
        {
            using var gateway = new GatewayClient(member.Gateway);
            while (true)
            {
                try
                {
                    var health = await gateway.HealthAsync(CancellationToken.None);
                    if (health.UpMembers == Size && health.Jobs == JobsReadiness.Ready && (await gateway.DevicesAsync(CancellationToken.None)).Length == 2 * Size) break;
                }
                catch (GatewayException) when (!member.Process.HasExited) { }
                if (member.Process.HasExited || clock.Elapsed > FormationTimeout)
                    throw new InvalidOperationException($"the cluster did not form within {FormationTimeout.TotalSeconds:0} s; {member.Name} said:\n{member.Process.Output}");
                await Task.Delay(200);
            }
        }
    }

    private readonly List<FabricProcess> _processes = [];

    /// <summary>
    /// Starts <paramref name="name"/> again once its process has ended: a new incarnation at its old Akka port (so at the
    /// same address), with its data directory, joining through the other members → the member, replacing the old one.
    /// </summary>
    public async Task<Member> RestartAsync(string name)
    {
        var old = this[name];
        await old.Process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var seeds = string.Join(',', Members.Where(m => m.Name != name).Select(m => m.Endpoint));
        var member = await StartAsync(name, seeds, old.Port);
        Members[Members.IndexOf(old)] = member;
        return member;
    }

    private async Task<Member> StartAsync(string name, string? seed, int port = 0)
    {
        var ready = Path.Combine(DataRoot, "ready", $"{name}.json");
        var process = FabricProcess.Start(name, ["node", "--name", name, "--port", port.ToString(), "--http-port", "0", "--ready-file", ready,
            .. seed is null ? Array.Empty<string>() : ["--seeds", seed],
            "--data-dir", Path.Combine(DataRoot, name), "--devices", "2", "--device-memory", "64MiB", .. JournalArguments()]);
        lock (_processes) _processes.Add(process);
        var endpoints = await process.WaitForReadyAsync(ready, FormationTimeout);
        return new Member(name, endpoints.Port, endpoints.HttpPort!.Value, process);
    }

    public Member this[string name] => Members.Single(m => m.Name == name);

    /// <summary>The journal the nodes share: a SQLite file of this fixture's own, unless a subclass says otherwise.</summary>
    protected virtual string[] JournalArguments() => ["--sqlite", Path.Combine(DataRoot, "fabric.db")];

    /// <summary>How many events the shared journal holds for <paramref name="persistenceId"/>, read from the database itself.</summary>
    public async Task<long> JournalEventsAsync(string persistenceId)
    {
        var arguments = JournalArguments();
        System.Data.Common.DbConnection connection = arguments[0] == "--sqlite"
            ? new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={arguments[1]}")
            : new Npgsql.NpgsqlConnection(arguments[1]);
        await using (connection)
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM journal WHERE persistence_id = @id";
            var parameter = command.CreateParameter();
            parameter.ParameterName = "id";
            parameter.Value = persistenceId;
            command.Parameters.Add(parameter);
            return Convert.ToInt64(await command.ExecuteScalarAsync());
        }
    }

    public async Task<DeviceInfo[]> DevicesAsync(string via = "n1")
    {
        using var gateway = new GatewayClient(this[via].Gateway);
        return await gateway.DevicesAsync(CancellationToken.None);
    }

    /// <summary>Polls the gateway until <paramref name="condition"/> holds; fails with the last answer after <paramref name="timeout"/>.</summary>
    public async Task<DeviceInfo[]> AwaitDevicesAsync(Func<DeviceInfo[], bool> condition, TimeSpan timeout, string via = "n1")
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var devices = await DevicesAsync(via);
            if (condition(devices)) return devices;
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"the devices did not reach the expected state within {timeout.TotalSeconds:0} s; last: " +
                                           string.Join("; ", devices.Select(d => $"{d.Id} used {d.MemoryUsed} contexts {d.OpenContexts}")));
            await Task.Delay(200);
        }
    }

    public virtual Task DisposeAsync()
    {
        foreach (var process in _processes) process.Dispose();
        try { Directory.Delete(DataRoot, recursive: true); }
        catch (IOException) { }
        return Task.CompletedTask;
    }

    public void Log(ITestOutputHelper output)
    {
        // Every process, the incarnations that were killed and restarted too.
        lock (_processes)
            foreach (var process in _processes) output.WriteLine($"--- {process.Label} (pid {process.Id}) ---\n{process.Output}");
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessCollection
{
    public const string Name = "processes";
}
