using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Node.Bench;

/// <summary>
/// The plain-Akka baseline of the remote benchmarks, on every node as /user/ping: a request/reply with nothing
/// behind it, and a counter of one-way messages. It measures the transport Fabric's requests ride on.
/// </summary>
public static class Ping
{
    public const string Name = "ping";

    public static Props Props() => Akka.Actor.Props.Create(() => new PingActor());

    /// <summary>Answered at once with <see cref="Pong"/> carrying the same number.</summary>
    [MessagePackObject]
    [Manifest("Ping.Request")]
    public sealed record Request([property: Key(0)] long Number) : IFabricMessage;

    [MessagePackObject]
    [Manifest("Ping.Pong")]
    public sealed record Pong([property: Key(0)] long Number) : IFabricMessage;

    /// <summary>One-way: counted, never answered.</summary>
    [MessagePackObject]
    [Manifest("Ping.Tick")]
    public sealed record Tick([property: Key(0)] long Number) : IFabricMessage;

    /// <summary>How many <see cref="Tick"/>s arrived → <see cref="TickCount"/>.</summary>
    [MessagePackObject]
    [Manifest("Ping.GetTicks")]
    public sealed record GetTicks : IFabricMessage;

    [MessagePackObject]
    [Manifest("Ping.TickCount")]
    public sealed record TickCount([property: Key(0)] long Count) : IFabricMessage;

    private sealed class PingActor : ReceiveActor
    {
        private long _ticks;

        public PingActor()
        {
            Receive<Request>(m => Sender.Tell(new Pong(m.Number)));
            Receive<Tick>(_ => _ticks++);
            Receive<GetTicks>(_ => Sender.Tell(new TickCount(_ticks)));
        }
    }
}
