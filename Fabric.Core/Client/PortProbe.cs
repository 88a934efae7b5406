using System.Net.Sockets;
using Akka.Actor;

namespace Fabric.Core.Client;

/// <summary>
/// Tells a node whose process is gone from one that is only silent. When a connection to a node closes, a new one to
/// its Akka port is tried: refused means nothing listens there any more — a killed process's sockets close at once —
/// while a frozen, slow or cut-off process still accepts (its kernel does) or does not answer. Known in milliseconds,
/// where the failure detector needs seconds of silence; every case but a refusal is left to the failure detector.
/// </summary>
public static class PortProbe
{
    // Generous: a refusal on a live network comes back at once, but a process that has just started (or a loaded
    // machine) can take a while to run the probe at all; only a silent host makes the probe wait this long.
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    // A process being killed closes its connections and its listening socket in one go, but a connection accepted in
    // between is possible: an accepted probe is tried again a few times before the port is taken for open.
    private const int Attempts = 3;
    private static readonly TimeSpan Between = TimeSpan.FromMilliseconds(200);

    /// <summary>What the node is told when its port refuses: why it is taken for lost.</summary>
    public const string Reason = "its connection closed and its port refuses new ones: the process is gone";

    /// <summary>The answer of <see cref="Start"/>, told to the actor that asked.</summary>
    public sealed record Answered(Address Address, bool Refused) : INoSerializationVerificationNeeded;

    /// <summary>Probes <paramref name="address"/> in the background and tells <paramref name="replyTo"/> an <see cref="Answered"/>.</summary>
    public static void Start(Address address, IActorRef replyTo) =>
        RefusesAsync(address).PipeTo(replyTo, success: refused => new Answered(address, refused), failure: _ => new Answered(address, false));

    /// <summary>True when a connection to the Akka port of <paramref name="address"/> is refused; false for anything else.</summary>
    public static Task<bool> RefusesAsync(Address address) =>
        address.Host is { } host && address.Port is { } port ? RefusesAsync(host, port) : Task.FromResult(false);

    /// <summary>True when a connection to <paramref name="host"/>:<paramref name="port"/> is refused; false for anything else.</summary>
    public static async Task<bool> RefusesAsync(string host, int port)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var timeout = new CancellationTokenSource(Timeout);
            using var probe = new TcpClient();
            try
            {
                await probe.ConnectAsync(host, port, timeout.Token);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                return true;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                return false; // no answer in time, or another network error
            }
            if (attempt == Attempts) return false;
            await Task.Delay(Between);
        }
    }
}
