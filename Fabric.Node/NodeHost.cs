using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Protocol;
using Fabric.Core.Serialization;
using Fabric.Devices;
using Fabric.Devices.DataPlane;
using Fabric.Node.Bench;
using Fabric.Node.Cluster;
using Fabric.Node.Gateway;
using Fabric.Node.Jobs;
using Akka.Cluster.Sharding;
using Fabric.Node.Persistence;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Fabric.Node;

/// <summary>
/// <c>fabric node</c>: one cluster member — its devices, the registry, the ping probe and the HTTP gateway — in a
/// generic host that leaves the cluster gracefully on Ctrl-C or SIGTERM.
/// </summary>
public static class NodeHost
{
    public static async Task<int> RunAsync(NodeOptions options, TextWriter output, CancellationToken cancel)
    {
        Directory.CreateDirectory(options.DataPath);
        var persistence = options.Persistence();
        try
        {
            await persistence.EnsureReadyAsync(cancel);
        }
        catch (PersistenceUnavailableException e)
        {
            await Console.Error.WriteLineAsync($"fabric node {options.Name}: {e.Message}");
            return 3;
        }
        await using var dataPlane = FabricDataPlane.Start(options.Host, options.DataPort, options.AdvertisedHost);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(c => c.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls(options.HttpPort > 0 ? $"http://{options.HttpBind}:{options.HttpPort}" : "http://127.0.0.1:0");
        builder.Services.AddAkka(FabricClientSystem.ClusterSystemName, (akka, _) => Configure(akka, options, dataPlane));
        builder.Services.AddSingleton<JobsReadiness>();

        var app = builder.Build();
        if (options.HttpPort > 0) HttpGateway.Map(app, options);
        await app.StartAsync(cancel);
        if (await DeviceFailureAsync(app, options, cancel) is { } failure)
        {
            await Console.Error.WriteLineAsync($"fabric node {options.Name}: {failure}");
            await app.StopAsync(CancellationToken.None);
            return 1;
        }
        _ = app.Services.GetRequiredService<JobsReadiness>()
            .WatchAsync(app.Services.GetRequiredService<ActorRegistry>().Get<JobRegionKey>(), app.Lifetime.ApplicationStopping);
        output.WriteLine($"fabric node {options.Name}: akka.tcp://{FabricClientSystem.ClusterSystemName}@{options.AdvertisedHost}:{options.Port}, " +
                         $"{options.Devices} devices of {options.DeviceMemory >> 20} MiB, data plane {dataPlane.Endpoint}, " +
                         (options.HttpPort > 0 ? $"gateway http://{options.HttpBind}:{options.HttpPort}, " : "no gateway, ") +
                         $"data {Path.GetFullPath(options.DataPath)}, journal {persistence}, " +
                         (options.Seeds.Count > 0 ? $"seeds {string.Join(",", options.Seeds)}" : "founding a new cluster"));
        output.Flush();
        if (Environment.GetEnvironmentVariable(ExitWithVariable) is { } pid && int.TryParse(pid, out var parent))
            _ = StopWhenGoneAsync(parent, app.Lifetime, cancel);
        await app.WaitForShutdownAsync(cancel);
        return 0;
    }

    /// <summary>
    /// Why the node's devices are not all running, in one sentence (a device that could not be created: its memory refused,
    /// say), or null when they are. A node short of its devices must not look healthy: it stops instead.
    /// </summary>
    private static async Task<string?> DeviceFailureAsync(WebApplication app, NodeOptions options, CancellationToken cancel)
    {
        var manager = app.Services.GetRequiredService<ActorRegistry>().Get<DeviceManagerKey>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var devices = (await manager.Ask<DeviceRequests.DeviceList>(new DeviceManager.ListLocalDevices(), TimeSpan.FromSeconds(10), cancel)).Devices;
            var failed = devices.Where(d => d.Status != DeviceStatus.Operational).ToList();
            if (failed.Count > 0)
                return $"device {failed[0].Id} could not be created" + (failed.Count > 1 ? $" (nor {failed.Count - 1} other of its {options.Devices} devices)" : "") +
                       $": {failed[0].Failure ?? failed[0].Status.ToString()}";
            if (devices.Length == options.Devices) return null;
            if (clock.Elapsed > TimeSpan.FromSeconds(10)) return $"only {devices.Length} of its {options.Devices} devices answered within 10 s";
            await Task.Delay(200, cancel);
        }
    }

    /// <summary>
    /// Set by a process that starts nodes for itself (<see cref="Hosting.LocalCluster"/>: the demo, chaos, benchmarks) to
    /// its own pid: the node stops when that process is gone, however it ended, instead of living on unattended.
    /// </summary>
    public const string ExitWithVariable = "FABRIC_EXIT_WITH_PID";

    private static async Task StopWhenGoneAsync(int parent, IHostApplicationLifetime lifetime, CancellationToken cancel)
    {
        while (!cancel.IsCancellationRequested)
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(parent);
                if (process.HasExited) break;
            }
            catch (ArgumentException) { break; } // no such process any more
            try { await Task.Delay(TimeSpan.FromSeconds(1), cancel); }
            catch (OperationCanceledException) { return; }
        }
        if (!cancel.IsCancellationRequested) lifetime.StopApplication();
    }

    /// <summary>The node's ActorSystem: remoting, clustering with the tuned failure detector, the Fabric serializer, its actors.</summary>
    public static AkkaConfigurationBuilder Configure(AkkaConfigurationBuilder akka, NodeOptions options, FabricDataPlane dataPlane)
    {
        var seeds = options.Seeds.Select(s =>
        {
            var (host, port) = NodeOptions.ParseEndpoint(s, "--seeds");
            return $"akka.tcp://{FabricClientSystem.ClusterSystemName}@{host}:{port}";
        }).ToArray();
        if (seeds.Length == 0) seeds = [$"akka.tcp://{FabricClientSystem.ClusterSystemName}@{options.AdvertisedHost}:{options.Port}"];

        return akka
            .AddHocon(ClusterTuning.Hocon, HoconAddMode.Prepend)
            .AddHocon(options.Persistence().ToConfig(), HoconAddMode.Prepend)
            .WithRemoting(new RemoteOptions { HostName = options.Host, PublicHostName = options.AdvertisedHost, Port = options.Port })
            .WithClustering(new ClusterOptions { SeedNodes = seeds, Roles = ["fabric-node"] })
            .WithCustomSerializer(FabricSerialization.SerializerName, [typeof(IFabricMessage)], system => new FabricMessageSerializer(system))
            .WithShardRegion<JobRegionKey>(JobEntity.TypeName,
                (_, registry, _) => entityId => entityId == JobIndex.EntityId
                    ? JobIndex.Props()
                    : JobEntity.Props(entityId, registry.Get<DeviceManagerKey>(), new JobRunOptions()),
                new JobEntity.MessageExtractor(),
                new ShardOptions
                {
                    Role = "fabric-node",
                    RememberEntities = true,
                    RememberEntitiesStore = RememberEntitiesStore.Eventsourced,
                    StateStoreMode = StateStoreMode.DData,
                })
            .WithActors((system, registry) =>
            {
                var devices = FabricDevices.Start(system, options.Name, options.DeviceProfiles(), dataPlane);
                var nodes = system.ActorOf(NodeRegistry.Props(options.Name, devices, TimeSpan.FromSeconds(1)), NodeRegistry.Name);
                system.ActorOf(Ping.Props(), Ping.Name);
                system.ActorOf(DataPlaneProbe.Props(dataPlane), DataPlaneProbe.Name);
                registry.Register<DeviceManagerKey>(devices);
                registry.Register<NodeRegistryKey>(nodes);
            });
    }
}

/// <summary>The key of the job shard region in Akka.Hosting's actor registry.</summary>
public sealed class JobRegionKey;
