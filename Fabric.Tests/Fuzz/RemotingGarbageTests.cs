using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Serialization;
using Fabric.Core.Client;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Fabric.Core.Serialization;
using Fabric.Devices;
using Fabric.Tests.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Fuzz;

/// <summary>
/// What arrives at a node's remoting port from a process that is no member: raw garbage and oversized frames on TCP,
/// and — over a real association — Fabric messages whose MessagePack bodies are random bytes under real manifests.
/// The node drops them all: it keeps running, answers a real client, and its devices and jobs are as they were.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class RemotingGarbageTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-remoting-garbage-{Guid.NewGuid():N}");

    /// <summary>A message the test sends; its serializer claims Fabric's id and a real manifest, and writes random bytes.</summary>
    private sealed record Garbage(string Manifest, byte[] Body);

    private sealed class GarbageSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
    {
        public override int Identifier => FabricMessageSerializer.SerializerId;
        public override string Manifest(object o) => ((Garbage)o).Manifest;
        public override byte[] ToBinary(object obj) => ((Garbage)obj).Body;
        public override object FromBinary(byte[] bytes, string manifest) => new Garbage(manifest, bytes);
    }

    [Fact]
    public async Task Garbage_frames_and_random_messagepack_from_a_non_member_change_nothing_and_the_node_keeps_serving()
    {
        var ready = Path.Combine(_root, "n1.ready.json");
        using var node = FabricProcess.Start("n1", "node", "--name", "n1", "--port", "0", "--http-port", "0", "--ready-file", ready,
            "--devices", "1", "--device-memory", "16MiB", "--data-dir", Path.Combine(_root, "n1"), "--sqlite", Path.Combine(_root, "fabric.db"));
        var endpoints = await node.WaitForReadyAsync(ready, TimeSpan.FromSeconds(60));
        using var gateway = new GatewayClient(endpoints.Gateway!);
        var before = await gateway.LocalDevicesAsync(CancellationToken.None);
        var jobsBefore = await gateway.JobsBriefAsync(CancellationToken.None);
        var random = new Random(20_261_204);

        // Raw TCP: random bytes, a length prefix far past the frame limit, a plausible length with random content.
        for (var i = 0; i < 120; i++)
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, endpoints.Port);
            var bytes = new byte[random.Next(1, 2048)];
            random.NextBytes(bytes);
            if (i % 3 == 1) BitConverter.TryWriteBytes(bytes.AsSpan(0, Math.Min(4, bytes.Length)), int.MaxValue);
            if (i % 3 == 2 && bytes.Length >= 4) System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes, bytes.Length - 4);
            try { await socket.SendAsync(bytes); }
            catch (SocketException) { } // the node closed it first: as good
        }

        // A real association from a non-member: Fabric messages with random MessagePack bodies under real manifests.
        var manifests = FabricMessageTypes.All.Keys.Order().ToArray();
        var setup = BootstrapSetup.Create().WithConfig(ConfigurationFactory.ParseString("""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
            akka.loglevel = ERROR
            """)).And(SerializationSetup.Create(system => ImmutableHashSet.Create(SerializerDetails.Create("garbage",
                new GarbageSerializer(system), ImmutableHashSet.Create(typeof(Garbage))))));
        using (var stranger = ActorSystem.Create("stranger", setup))
        {
            var devices = stranger.ActorSelection($"akka.tcp://fabric@127.0.0.1:{endpoints.Port}/user/devices");
            var registry = stranger.ActorSelection($"akka.tcp://fabric@127.0.0.1:{endpoints.Port}/system/sharding/job");
            for (var i = 0; i < 2_000; i++)
            {
                var body = new byte[random.Next(0, 256)];
                random.NextBytes(body);
                var garbage = new Garbage(manifests[random.Next(manifests.Length)], body);
                (i % 2 == 0 ? devices : registry).Tell(garbage);
            }
            // Sent: wait until a question behind them all is answered (Identify travels the same association) or 10 s pass.
            await devices.Ask<ActorIdentity>(new Identify(0), TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        }

        // A real client is served, and nothing changed: no context, no memory, no job.
        using var system = FabricClientSystem.Create();
        var client = await FabricClient.ConnectAsync(system, $"127.0.0.1:{endpoints.Port}");
        var listed = await client.ListDevicesAsync();
        var after = await gateway.LocalDevicesAsync(CancellationToken.None);
        var jobsAfter = await gateway.JobsBriefAsync(CancellationToken.None);
        output.WriteLine(node.Output.Length > 20_000 ? node.Output[..20_000] + "…" : node.Output);
        Assert.False(node.HasExited, "the node exited");
        // The random bodies did reach the node, and were refused by its serializer (not dropped on the way).
        Assert.Contains("Failed to deserialize", node.Output);
        Assert.Equal("Up", (await gateway.HealthAsync(CancellationToken.None)).Status);
        Assert.Equal(before.Select(d => d.Id), listed.Select(d => d.Id));
        Assert.Equal(before.Select(d => (d.Id, d.OpenContexts, d.MemoryUsed, d.Allocations, d.CompletedSubmissions, d.FailedSubmissions, d.Status)),
            after.Select(d => (d.Id, d.OpenContexts, d.MemoryUsed, d.Allocations, d.CompletedSubmissions, d.FailedSubmissions, d.Status)));
        Assert.Equal(jobsBefore.Select(j => j.JobId), jobsAfter.Select(j => j.JobId));
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }
}
