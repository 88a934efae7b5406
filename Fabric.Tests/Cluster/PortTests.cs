using System.Net;
using System.Net.Sockets;
using Fabric.Core.Gateway;
using Fabric.Node.Cli;
using Fabric.Node.Hosting;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// Nodes take the ports the system gives them and say which; a port another process holds is refused in one line;
/// a local cluster starts however busy the machine's ports are.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class PortTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-ports-{Guid.NewGuid():N}");
    private readonly List<IDisposable> _held = [];

    [Fact]
    public async Task A_node_on_port_0_writes_its_ready_file_with_the_ports_it_bound_and_answers_on_them()
    {
        var ready = Path.Combine(_root, "n1.ready.json");
        using var node = Node("n1", "--port", "0", "--http-port", "0", "--data-port", "0", "--ready-file", ready);

        var endpoints = await node.WaitForReadyAsync(ready, TimeSpan.FromSeconds(60));

        output.WriteLine(File.ReadAllText(ready));
        Assert.Equal(("n1", node.Id), (endpoints.Name, endpoints.Pid));
        Assert.All(new[] { endpoints.Port, endpoints.HttpPort!.Value, endpoints.DataPort }, port => Assert.InRange(port, 1, 65535));
        Assert.Equal($"akka.tcp://fabric@127.0.0.1:{endpoints.Port}", endpoints.Address);
        Assert.Equal($"http://127.0.0.1:{endpoints.HttpPort}", endpoints.Gateway);
        Assert.Equal($"127.0.0.1:{endpoints.DataPort}", endpoints.DataEndpoint);
        // The gateway answers at the URL in the file, for the member at the address in the file, which is Up.
        using var gateway = new GatewayClient(endpoints.Gateway!);
        var health = await gateway.HealthAsync(CancellationToken.None);
        Assert.Equal((endpoints.Address, "Up"), (health.Address, health.Status));
        // The Akka endpoint and the data plane accept connections on the ports in the file.
        foreach (var port in new[] { endpoints.Port, endpoints.DataPort })
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port);
        }
        await node.WaitForLineAsync($"fabric node n1: {endpoints.Address}", TimeSpan.FromSeconds(5)); // the line on stdout says the same
    }

    [Theory]
    [InlineData("--port")]
    [InlineData("--http-port")]
    [InlineData("--data-port")]
    public async Task A_node_told_a_port_another_process_holds_exits_1_with_one_line_naming_it(string flag)
    {
        // Held as permissively as an Akka node of before held its port (SO_REUSEADDR, which .NET makes SO_REUSEPORT on
        // Linux): a second listener that also asked to share would be let in.
        var port = HoldPort(shareable: true);
        string[] ports = ["--port", "0", "--http-port", "0", "--data-port", "0"];
        ports[Array.IndexOf(ports, flag) + 1] = port.ToString();
        using var node = Node("n2", ports);

        var exit = await node.WaitForExitAsync(TimeSpan.FromSeconds(60));

        var lines = node.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        output.WriteLine(node.Output);
        Assert.Equal(1, exit);
        var line = Assert.Single(lines);
        Assert.Equal($"fabric node n2: {Fabric.Node.NodeHost.CannotListenOn(flag, "127.0.0.1", port)}", line[..line.LastIndexOf(" for ", StringComparison.Ordinal)]);
        Assert.EndsWith("address already in use", line);
    }

    [Fact]
    public async Task A_local_cluster_comes_up_while_many_ports_are_held_and_a_node_whose_old_port_is_taken_rejoins_at_a_new_one()
    {
        for (var i = 0; i < 64; i++) HoldPort(shareable: i % 2 == 0); // a busy machine: ports of the system's choosing, held

        await using var cluster = await LocalCluster.StartAsync(new LocalCluster.Options
        {
            Nodes = 3,
            DeviceMemory = "16MiB",
            Root = _root,
            StartTimeout = TimeSpan.FromSeconds(90),
        }, output.WriteLine, CancellationToken.None);

        // Every node was started on port 0 and reported what it bound: nobody chose its ports beforehand.
        foreach (var node in cluster.Nodes)
        {
            if (OperatingSystem.IsLinux())
            {
                var command = File.ReadAllText($"/proc/{node.ProcessId}/cmdline").Split('\0');
                Assert.Equal("0", command[Array.IndexOf(command, "--port") + 1]);
                Assert.Equal("0", command[Array.IndexOf(command, "--http-port") + 1]);
            }
            Assert.Equal(node.ProcessId, node.Endpoints!.Pid);
        }
        Assert.Equal(3, cluster.Nodes.Select(n => n.Port).Distinct().Count());

        // n2 is killed and another process takes its port before it comes back: it starts on a new one, a new member.
        var victim = cluster["n2"];
        var old = victim.Endpoints!;
        victim.Kill();
        HoldPort(shareable: true, old.Port);
        var outcome = await cluster.RestartAsync(victim, CancellationToken.None);

        output.WriteLine(outcome.Describe());
        Assert.True(outcome.PortTaken);
        Assert.False(outcome.SameAddress);
        Assert.Equal(old, outcome.Before);
        Assert.NotEqual(old.Port, victim.Port);
        using var gateway = new GatewayClient(cluster["n1"].Gateway);
        var members = (await gateway.NodesAsync(CancellationToken.None)).Nodes;
        Assert.Contains(members, m => m.Node == "n2" && m.Address == victim.Address && m.Status == "Up" && m.Reachable);
        Assert.DoesNotContain(members, m => m.Address == old.Address && m.Status == "Up" && m.Reachable);
    }

    private FabricProcess Node(string name, params string[] ports) => FabricProcess.Start(name,
    [
        "node", "--name", name, .. ports, "--devices", "1", "--device-memory", "16MiB",
        "--data-dir", Path.Combine(_root, name), "--sqlite", Path.Combine(_root, "fabric.db"),
    ]);

    /// <summary>Listens on <paramref name="port"/> of 127.0.0.1 (0: one the system chooses) until the test ends → the port.</summary>
    private int HoldPort(bool shareable, int port = 0)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (shareable) socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
        socket.Listen(16);
        _held.Add(socket);
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public void Dispose()
    {
        foreach (var held in _held) held.Dispose();
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
