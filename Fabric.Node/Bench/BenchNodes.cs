using System.Diagnostics;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;

namespace Fabric.Node.Bench;

/// <summary>Node processes a benchmark starts on 127.0.0.1 and kills when done, and a client connected to the first.</summary>
public sealed class BenchNodes : IAsyncDisposable
{
    private readonly List<(Process Process, int Port, int HttpPort)> _nodes = [];
    private readonly string _data = Path.Combine(Path.GetTempPath(), $"fabric-bench-{Guid.NewGuid():N}");

    private BenchNodes(ActorSystem system) => System = system;

    public ActorSystem System { get; }
    public FabricClient Client { get; private set; } = null!;
    public IReadOnlyList<Process> Processes => [.. _nodes.Select(n => n.Process)];

    /// <summary>Starts <paramref name="names"/>.Length nodes (the first one the seed) with one device each, and connects.</summary>
    public static async Task<BenchNodes> StartAsync(string[] names, string deviceMemory, Action<string> progress, CancellationToken cancel,
        int devicesPerNode = 1)
    {
        var nodes = new BenchNodes(FabricClientSystem.Create());
        var seed = 0;
        foreach (var name in names)
        {
            var port = FreePort();
            var http = FreePort();
            if (seed == 0) seed = port;
            progress($"starting node {name} on 127.0.0.1:{port} (gateway {http})");
            nodes._nodes.Add((StartNode(name, port, http, seed, deviceMemory, devicesPerNode, nodes._data), port, http));
        }
        nodes.Client = await nodes.ConnectWhenReadyAsync(names.Length * devicesPerNode, cancel);
        return nodes;
    }

    public string Endpoint(int index) => $"127.0.0.1:{_nodes[index].Port}";
    public string Gateway(int index) => $"http://127.0.0.1:{_nodes[index].HttpPort}";

    public Task<IActorRef> ResolveAsync(int node, string actor, CancellationToken cancel) =>
        System.ActorSelection($"akka.tcp://{FabricClientSystem.ClusterSystemName}@{Endpoint(node)}/user/{actor}").ResolveOne(TimeSpan.FromSeconds(10), cancel);

    private static Process StartNode(string name, int port, int http, int seed, string deviceMemory, int devices, string root)
    {
        var data = Path.Combine(root, name);
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(typeof(BenchNodes).Assembly.Location);
        foreach (var arg in new[] { "node", "--name", name, "--port", port.ToString(), "--seeds", $"127.0.0.1:{seed}", "--http-port", http.ToString(),
                     "--devices", devices.ToString(), "--device-memory", deviceMemory, "--data-dir", data, "--sqlite", Path.Combine(root, "fabric.db") })
            start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start a node process");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"[{name}] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private async Task<FabricClient> ConnectWhenReadyAsync(int devices, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (_nodes.FirstOrDefault(n => n.Process.HasExited) is { Process: not null } dead)
                throw new InvalidOperationException($"a node process exited with code {dead.Process.ExitCode}");
            try
            {
                await using var probe = await FabricClient.ConnectAsync(System, Endpoint(0), new FabricClientOptions { RequestTimeout = TimeSpan.FromSeconds(2) }, cancel);
                if ((await probe.ListDevicesAsync(cancel)).Count >= devices)
                    return await FabricClient.ConnectAsync(System, Endpoint(0), new FabricClientOptions { RequestTimeout = TimeSpan.FromSeconds(60) }, cancel);
            }
            catch (FabricException) when (clock.Elapsed < TimeSpan.FromSeconds(90)) { }
            if (clock.Elapsed > TimeSpan.FromSeconds(90)) throw new TimeoutException("the bench cluster did not form within 90 s");
            await Task.Delay(250, cancel);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Client is not null) await Client.DisposeAsync();
        await System.Terminate();
        foreach (var (process, _, _) in _nodes)
        {
            try { process.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            process.Dispose();
        }
        try { Directory.Delete(_data, recursive: true); }
        catch (IOException) { }
    }

    private static int FreePort()
    {
        using var listener = new global::System.Net.Sockets.TcpListener(global::System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((global::System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
