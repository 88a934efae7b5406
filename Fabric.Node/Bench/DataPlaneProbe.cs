using System.Diagnostics;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Serialization;
using Fabric.Devices.DataPlane;
using MessagePack;

namespace Fabric.Node.Bench;

/// <summary>
/// On every node as /user/dataplane: tells its data plane's endpoint, and pulls raw bytes from another node's data
/// plane — the raw-TCP baseline of <c>fabric bench p2p</c>, measured between the same two processes, same framing
/// and chunk size as a P2P read.
/// </summary>
public static class DataPlaneProbe
{
    public const string Name = "dataplane";

    public static Props Props(FabricDataPlane dataPlane) => Akka.Actor.Props.Create(() => new DataPlaneProbeActor(dataPlane));

    /// <summary>→ <see cref="Endpoint"/>.</summary>
    [MessagePackObject]
    [Manifest("DataPlaneProbe.GetEndpoint")]
    public sealed record GetEndpoint : IFabricMessage;

    [MessagePackObject]
    [Manifest("DataPlaneProbe.Endpoint")]
    public sealed record Endpoint([property: Key(0)] string HostPort) : IFabricMessage;

    /// <summary>Pulls <paramref name="Bytes"/> from the data plane at <paramref name="From"/> → <see cref="Pulled"/> or a <see cref="FabricError"/>.</summary>
    [MessagePackObject]
    [Manifest("DataPlaneProbe.PullRaw")]
    public sealed record PullRaw([property: Key(0)] string From, [property: Key(1)] long Bytes) : IFabricMessage;

    [MessagePackObject]
    [Manifest("DataPlaneProbe.Pulled")]
    public sealed record Pulled([property: Key(0)] long Bytes, [property: Key(1)] double Seconds) : IFabricMessage;

    private sealed class DataPlaneProbeActor : ReceiveActor
    {
        public DataPlaneProbeActor(FabricDataPlane dataPlane)
        {
            Receive<GetEndpoint>(_ => Sender.Tell(new Endpoint(dataPlane.Endpoint)));
            Receive<PullRaw>(m =>
            {
                var clock = Stopwatch.StartNew();
                dataPlane.PullRawAsync(m.From, m.Bytes, CancellationToken.None).PipeTo(Sender,
                    success: () => new Pulled(m.Bytes, clock.Elapsed.TotalSeconds),
                    failure: e => new FabricError(ErrorCode.EIO, $"raw pull from {m.From} failed: {e.Message}"));
            });
        }
    }
}
