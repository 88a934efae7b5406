using System.Runtime.InteropServices;
using Akka;
using Akka.Actor;

namespace Fabric.Node.Cluster;

/// <summary>
/// A node the cluster has downed ends its process at once, instead of Akka's graceful shutdown, whose remoting takes
/// about 2 s to close.
/// <para>
/// Why: Akka.NET's TLS transport (Akka.Remote 1.5.50 and later) shuts down any node whose <em>outbound</em> TLS
/// handshake fails, whatever the cause: exit code 79, by design, so that a misconfigured node cannot linger. A downed
/// node's remoting, while it shuts down, still accepts connections but no longer completes their handshakes, and the
/// survivors connect to it then, to deliver the quarantine: their handshakes fail and they shut down too. Measured
/// here: after a one-way link cut in a 5-node cluster the resolver downed the two cut nodes, and 2 s later the three
/// survivors went down as well. A process that is gone refuses connections, which Akka takes as an ordinary failed
/// association; a downed node has nothing left to hand over (its shards restart elsewhere from the journal, as after a
/// kill).
/// </para>
/// </summary>
internal static class DownedExit
{
    /// <summary>The exit code: Akka's own for a node shut down because it was downed.</summary>
    public const int ExitCode = 3;

    /// <param name="goodbye">Run just before the process ends (remove the ready file), after the line on stderr.</param>
    public static void Register(ActorSystem system, string node, Action goodbye)
    {
        var shutdown = CoordinatedShutdown.Get(system);
        shutdown.AddTask(CoordinatedShutdown.PhaseBeforeServiceUnbind, "exit-when-downed", () =>
        {
            if (shutdown.ShutdownReason is not CoordinatedShutdown.ClusterDowningReason) return Task.FromResult(Done.Instance);
            Console.Error.WriteLine($"fabric node {node}: the cluster downed this node; its process ends now (exit code {ExitCode}), " +
                                    "so that no peer meets a half-closed TLS endpoint");
            Console.Error.Flush();
            Console.Out.Flush();
            goodbye();
            End();
            return Task.FromResult(Done.Instance);
        });
    }

    /// <summary>Ends the process without running anything more (no host shutdown, which would wait on this one).</summary>
    private static void End()
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) NativeExit(ExitCode);
        System.Diagnostics.Process.GetCurrentProcess().Kill();
    }

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void NativeExit(int code);
}
