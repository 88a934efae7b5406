namespace Fabric.Node.Cluster;

/// <summary>
/// The cluster's membership and failure-detection settings, all in one place. Chosen from measurements of 3 nodes on
/// one machine where one is SIGKILLed (Akka.NET 1.5.74):
/// <list type="bullet">
/// <item>failure detector: heartbeat every 500 ms, 2 s of silence tolerated → the killed node is unreachable after
/// about 3 s (the 1 s / 3 s defaults take about 5 s);</item>
/// <item>Split Brain Resolver, keep-majority, stable after 3 s, down-removal margin 1 s → the node is downed and removed
/// about 7–8 s after the kill (the 20 s default takes about 26 s); a minority side downs itself;</item>
/// <item>the same heartbeat for remote death-watch of clients that are not members, so a killed client's contexts are
/// released about 3 s after it dies;</item>
/// <item>seed-node timeout and retry gate of 1 s, so three nodes started together form a cluster in 3–4 s;</item>
/// <item>sharding and singleton retries of 0.5–1 s (defaults up to 10 s), so a job whose node was removed restarts on
/// another node within seconds.</item>
/// </list>
/// A node's requests to an unreachable node fail with ENODEV from the moment it is unreachable, not only once removed;
/// a killed node is taken for lost sooner still, once its port refuses connections (<see cref="Fabric.Core.Client.PortProbe"/>).
/// </summary>
public static class ClusterTuning
{
    public static readonly TimeSpan HeartbeatInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan AcceptablePause = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(3);

    /// <summary>The documented bound, from SIGKILL of a node to the failure of every request for its devices.</summary>
    public static readonly TimeSpan DetectionTime = TimeSpan.FromSeconds(5);

    public const string Hocon = """
        akka {
          loglevel = WARNING
          stdout-loglevel = WARNING
          cluster {
            failure-detector {
              heartbeat-interval = 500ms
              acceptable-heartbeat-pause = 2s
              threshold = 8.0
            }
            downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
            split-brain-resolver {
              active-strategy = keep-majority
              stable-after = 3s
              down-all-when-unstable = on
            }
            down-removal-margin = 1s
            seed-node-timeout = 1s
            retry-unsuccessful-join-after = 1s
            shutdown-after-unsuccessful-join-seed-nodes = off
            log-info = off
            # Job entities (Cluster.Sharding, remembered) restart on another node soon after theirs is removed.
            sharding {
              # Running jobs are remembered in the journal, so they restart after their node is lost; the coordinator's
              # state is gossiped (ddata). Shards never rebalance (Jobs/JobShardAllocation): a job moves only when its
              # node is lost or leaves.
              remember-entities = on
              remember-entities-store = eventsourced
              state-store-mode = ddata
              entity-restart-backoff = 1s
              retry-interval = 500ms
              coordinator-failure-backoff = 1s
              shard-start-timeout = 3s
              # A shard loading or writing its remembered entities in the shared journal: on a busy 2-core machine 2 s
              # was seen to run out, and the shard then restarts after a backoff (a submit waited 30 s).
              waiting-for-state-timeout = 5s
              updating-state-timeout = 5s
            }
            singleton.hand-over-retry-interval = 500ms
            singleton-proxy.singleton-identification-interval = 500ms
          }
          remote {
            retry-gate-closed-for = 1s
            # A job's spec travels to its entity in one message, and a full view of its state back: 100 000 tiny tasks are
            # about 5 MB and 9 MB as messages. One 16 MiB message holds the association for some 60 ms (measured 240-330
            # MiB/s), well inside the failure detector's 2 s; a larger spec is refused with E2BIG (JobsService.SpecLimit).
            dot-netty.tcp.maximum-frame-size = 16 MiB
            # Akka's default (on except on Windows) becomes SO_REUSEPORT on Linux in .NET: a second node told the port of a
            # running one would listen on it too, and the kernel would share its connections between them. Off, it fails.
            dot-netty.tcp.tcp-reuse-addr = off
            watch-failure-detector {
              heartbeat-interval = 500ms
              acceptable-heartbeat-pause = 2s
            }
            watch-unreachable-reaper-interval = 500ms
          }
          coordinated-shutdown.run-by-clr-shutdown-hook = on
        }
        """;
}
