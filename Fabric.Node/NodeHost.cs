using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote;
using Akka.Remote.Hosting;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Protocol;
using Fabric.Core.Security;
using Fabric.Core.Serialization;
using Fabric.Core.Telemetry;
using Fabric.Devices;
using Fabric.Devices.DataPlane;
using Fabric.Node.Bench;
using Fabric.Node.Cluster;
using Fabric.Node.Gateway;
using Fabric.Node.Hosting;
using Fabric.Node.Jobs;
using Akka.Cluster.Sharding;
using Fabric.Node.Persistence;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Fabric.Node;

/// <summary>
/// <c>fabric node</c>: one cluster member — its devices, the registry, the ping probe and the HTTP gateway — in a
/// generic host that leaves the cluster gracefully on Ctrl-C or SIGTERM.
/// </summary>
public static class NodeHost
{
    public static async Task<int> RunAsync(NodeOptions options, TextWriter output, CancellationToken cancel)
    {
        ClusterTls? tls;
        try { tls = options.LoadTls(); }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"fabric node {options.Name}: {e.Message}");
            return 2;
        }
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
        FabricDataPlane dataPlane;
        try
        {
            dataPlane = FabricDataPlane.Start(options.Host, options.DataPort, options.AdvertisedHost, tls);
        }
        catch (SocketException e)
        {
            return CannotListen(options, Console.Error, "--data-port", "the data plane", options.Host, options.DataPort, Reason(e));
        }
        await using var ownedDataPlane = dataPlane;

        // From here until the host has started, what Akka and the host print is held: a port that cannot be had is said
        // in one line (CannotListen) instead of their three reports of it with stack traces.
        var console = StartupConsole.Hold();
        var builder = WebApplication.CreateSlimBuilder();
        NodeLogging.Configure(builder.Logging, options.LogLevel);
        // Without a gateway Kestrel still runs (it is the host's server): on a free loopback port, with no routes.
        builder.WebHost.UseUrls(options.NoGateway ? "http://127.0.0.1:0" : $"http://{options.HttpBind}:{options.HttpPort}");
        builder.Services.AddAkka(FabricClientSystem.ClusterSystemName, (akka, services) =>
        {
            Configure(akka, options, dataPlane).AddSetup(new LogBridgeActor.Bridge(services.GetRequiredService<ILoggerFactory>()));
            if (tls is not null) akka.AddHocon(ClusterTls.Hocon, HoconAddMode.Prepend).AddSetup(tls.Setup());
        });
        builder.Services.AddSingleton<JobsReadiness>();
        builder.Services.AddSingleton<JobHistory>();
        // GET /metrics (HttpGateway): Fabric's meter in the Prometheus text format, each node an instance of service fabric.
        builder.Services.AddSingleton<NodeMetrics>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("fabric", serviceInstanceId: options.Name))
            .WithMetrics(metrics => metrics.AddMeter(FabricMetrics.MeterName).AddPrometheusExporter());

        await using var app = builder.Build();
        if (!options.NoGateway) HttpGateway.Map(app, options);
        try
        {
            await app.StartAsync(cancel);
        }
        catch (Exception e) when (BindFailure(e) is var (akka, reason))
        {
            console.Drop();
            return akka
                ? CannotListen(options, console.Error, "--port", "the Akka endpoint", options.Host, options.Port, reason)
                : CannotListen(options, console.Error, "--http-port", "the HTTP gateway", options.HttpBind, options.HttpPort, reason);
        }
        finally
        {
            console.Release(); // after a Drop, nothing: the process is about to end
        }

        var system = app.Services.GetRequiredService<ActorSystem>();
        var cluster = Akka.Cluster.Cluster.Get(system);
        // The address the endpoint really has (its port chosen by the system for --port 0). With no seeds this node
        // founds the cluster: it joins itself, at that address, which no configuration written beforehand could name.
        var self = cluster.SelfAddress;
        if (options.Seeds.Count == 0) cluster.Join(self);
        // While the node joins: its first journal read, so that the first job it hosts does not wait for it (the ready
        // file and jobs: ready wait for it too, which is seldom longer than the join).
        var journalWarm = Persistence.JournalWarmup.RunAsync(system, options.Name, TimeSpan.FromSeconds(15));
        var gateway = options.NoGateway ? null : app.Urls.First(); // with the port Kestrel bound
        var endpoints = new NodeEndpoints(options.Name, Environment.ProcessId, self.ToString(), self.Host!, self.Port!.Value,
            gateway, gateway is null ? null : new Uri(gateway).Port, dataPlane.Endpoint, dataPlane.Port);
        if (await DeviceFailureAsync(app, options, cancel) is { } failure)
        {
            await Console.Error.WriteLineAsync($"fabric node {options.Name}: {failure}");
            await app.StopAsync(CancellationToken.None);
            return 1;
        }
        _ = app.Services.GetRequiredService<JobsReadiness>()
            .WatchAsync(app.Services.GetRequiredService<ActorRegistry>().Get<JobRegionKey>(), journalWarm, app.Lifetime.ApplicationStopping);
        output.WriteLine($"fabric node {options.Name}: {endpoints.Address}, " +
                         $"{options.Devices} devices of {options.DeviceMemory >> 20} MiB, data plane {endpoints.DataEndpoint}, " +
                         (endpoints.Gateway is { } url ? $"gateway {url}, " : "no gateway, ") +
                         $"data {Path.GetFullPath(options.DataPath)}, journal {persistence}, " +
                         (options.Seeds.Count > 0 ? $"seeds {string.Join(",", options.Seeds)}" : "founding a new cluster") +
                         (tls is null ? ", remoting and data plane plain TCP (no --tls-cert: whoever reaches its port can join)"
                             : $", remoting and data plane TLS with mutual authentication (trusting {tls.Trust.Authority.Subject} only)"));
        output.Flush();
        if (options.Insecure) await Console.Error.WriteLineAsync(InsecureWarning(options.Name, endpoints));
        if (options.ReadyFile is { } readyFile)
            cluster.RegisterOnMemberUp(async () =>
            {
                await journalWarm;
                try { endpoints.Write(readyFile); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"fabric node {options.Name}: cannot write --ready-file {readyFile}: {e.Message}");
                }
            });
        if (Environment.GetEnvironmentVariable(ExitWithVariable) is { } pid && int.TryParse(pid, out var parent))
            _ = StopWhenGoneAsync(parent, app.Lifetime, cancel);
        try
        {
            await app.WaitForShutdownAsync(cancel);
        }
        finally
        {
            if (options.ReadyFile is { } written && NodeEndpoints.TryRead(written)?.Pid == Environment.ProcessId)
                File.Delete(written);
        }
        return 0;
    }

    internal const string InsecureWarningStart = "WARNING: fabric node ";

    /// <summary>What a node started with --insecure says on stderr, where an operator's eye falls on it.</summary>
    internal static string InsecureWarning(string name, NodeEndpoints endpoints) =>
        $"{InsecureWarningStart}{name} runs with --insecure: remoting ({endpoints.Host}:{endpoints.Port}) and the data plane ({endpoints.DataEndpoint}) " +
        "are plain TCP without authentication. Anyone who can reach these ports can join the cluster, send any actor a message and read or " +
        "write exported device memory. Use it on a laptop or a network you trust; elsewhere give the node certificates (fabric certs init, fabric certs issue NAME).";

    /// <summary>
    /// The start of a node ends here when one of its ports cannot be had (another process holds it): one line that names
    /// the port and the flag that chose it, exit code 1.
    /// </summary>
    private static int CannotListen(NodeOptions options, TextWriter error, string flag, string what, string host, int port, string reason)
    {
        error.WriteLine($"fabric node {options.Name}: {CannotListenOn(flag, host, port)} for {what}: {reason}");
        error.Flush();
        return 1;
    }

    /// <summary>The words naming a port the node could not have, e.g. <c>cannot listen on 127.0.0.1:4053 (--port)</c>.</summary>
    public static string CannotListenOn(string flag, string host, int port) => $"cannot listen on {host}:{port} ({flag})";

    /// <summary>
    /// Whether the host did not start because a port could not be had, and whose: Kestrel's (the gateway's, thrown as
    /// is) or Akka.Remote's (its endpoint's, inside the ActorSystem's start failure).
    /// </summary>
    private static (bool Akka, string Reason)? BindFailure(Exception e)
    {
        if (e is IOException { InnerException: AddressInUseException }) return (false, InUse);
        if (e is SocketException kestrel) return (false, Reason(kestrel));
        for (var inner = e.InnerException; inner is not null; inner = inner.InnerException)
            if (inner is RemoteTransportException { InnerException: SocketException akka }) return (true, Reason(akka));
        return null;
    }

    private const string InUse = "address already in use";

    private static string Reason(SocketException e) => e.SocketErrorCode == SocketError.AddressAlreadyInUse ? InUse : e.Message;

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
            var failed = devices.Where(d => d.Status != DeviceStatus.Operational).OrderBy(d => d.Id.Index).ToList();
            // Told once every device has answered (they start side by side), so the first named is the first that failed.
            if (failed.Count > 0 && (devices.Length == options.Devices || clock.Elapsed > TimeSpan.FromSeconds(10)))
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
        // No seeds: the node joins itself once started (RunAsync), at the address it was given or, for port 0, chose.
        var seeds = options.Seeds.Select(s =>
        {
            var (host, port) = NodeOptions.ParseEndpoint(s, "--seeds");
            return $"{(options.UsesTls ? "akka.ssl.tcp" : "akka.tcp")}://{FabricClientSystem.ClusterSystemName}@{host}:{port}";
        }).ToArray();

        return akka
            .AddHocon(ClusterTuning.Hocon, HoconAddMode.Prepend)
            .AddHocon(options.Persistence().ToConfig(), HoconAddMode.Prepend)
            .ConfigureLoggers(loggers =>
            {
                loggers.LogLevel = NodeLogging.AkkaLevel(options.LogLevel);
                loggers.ClearLoggers();
                loggers.AddLogger<LogBridgeActor>();
            })
            .WithRemoting(new RemoteOptions { HostName = options.Host, PublicHostName = options.AdvertisedHost, Port = options.Port })
            .WithClustering(new ClusterOptions { SeedNodes = seeds, Roles = ["fabric-node"] })
            .WithCustomSerializer(FabricSerialization.SerializerName, [typeof(IFabricMessage)], system => new FabricMessageSerializer(system))
            .WithActors((system, registry) =>
            {
                var devices = FabricDevices.Start(system, options.Name, options.DeviceProfiles(), dataPlane);
                var nodes = system.ActorOf(NodeRegistry.Props(options.Name, devices, TimeSpan.FromSeconds(1)), NodeRegistry.Name);
                system.ActorOf(Ping.Props(), Ping.Name);
                system.ActorOf(AssociationResetActor.Props(), AssociationResetActor.Name);
                DownedExit.Register(system, options.Name, () =>
                {
                    if (options.ReadyFile is { } written && NodeEndpoints.TryRead(written)?.Pid == Environment.ProcessId) File.Delete(written);
                });
                system.ActorOf(DataPlaneProbe.Props(dataPlane), DataPlaneProbe.Name);
                registry.Register<DeviceManagerKey>(devices);
                registry.Register<NodeRegistryKey>(nodes);
                // Started here rather than with Akka.Hosting's WithShardRegion, which takes no allocation strategy.
                // Remembered in the journal (ClusterTuning: remember-entities-store = eventsourced, state-store-mode = ddata).
                var settings = ClusterShardingSettings.Create(system).WithRole("fabric-node").WithRememberEntities(true);
                registry.Register<JobRegionKey>(ClusterSharding.Get(system).Start(JobEntity.TypeName,
                    entityId => JobEntity.RegionEntity(entityId, devices, new JobRunOptions()),
                    settings, new JobEntity.MessageExtractor(), JobShardAllocation.For(system), JobEntity.HandOff.Instance));
            });
    }
}

/// <summary>The key of the job shard region in Akka.Hosting's actor registry.</summary>
public sealed class JobRegionKey;
