using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Fabric.Core.Security;
using Fabric.Core.Serialization;

namespace Fabric.Core.Client;

/// <summary>
/// The ActorSystem of a client process that is not a cluster member: Akka.Remote on a loopback (or given) address
/// and an ephemeral port, the Fabric serializer, and a failure detector tuned so that a lost node is noticed in
/// about three seconds (heartbeat every 500 ms, 2 s of silence tolerated).
/// </summary>
public static class FabricClientSystem
{
    /// <summary>The ActorSystem name every Fabric node uses.</summary>
    public const string ClusterSystemName = "fabric";

    /// <summary>A client system; with <paramref name="tls"/>, its connections are TLS with this certificate (nodes that use TLS accept no other).</summary>
    public static ActorSystem Create(string hostname = "127.0.0.1", string name = "fabric-client", ClusterTls? tls = null)
    {
        var config = ConfigurationFactory.ParseString($$"""
            akka {
              loglevel = WARNING
              stdout-loglevel = WARNING
              actor.provider = remote
              remote {
                log-remote-lifecycle-events = off
                dot-netty.tcp { hostname = "{{hostname}}", port = 0, maximum-frame-size = 16 MiB }
                watch-failure-detector { heartbeat-interval = 500ms, acceptable-heartbeat-pause = 2s }
                watch-unreachable-reaper-interval = 500ms
              }
            }
            """);
        if (tls is not null) config = ConfigurationFactory.ParseString(ClusterTls.Hocon).WithFallback(config);
        var setup = BootstrapSetup.Create().WithConfig(config).And(FabricSerialization.Setup());
        return ActorSystem.Create(name, tls is null ? setup : setup.And(tls.Setup()));
    }
}
