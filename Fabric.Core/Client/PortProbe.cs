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
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);

    /// <summary>What the node is told when its port refuses: why it is taken for lost.</summary>
    public const string Reason = "its connection closed and its port refuses new ones: the process is gone";

    /// <summary>True when a connection to the Akka port of <paramref name="address"/> is refused; false for anything else.</summary>
    public static async Task<bool> RefusesAsync(Address address)
    {
        if (address.Host is not { } host || address.Port is not { } port) return false;
        using var timeout = new CancellationTokenSource(Timeout);
        using var probe = new TcpClient();
        try
        {
            await probe.ConnectAsync(host, port, timeout.Token);
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false; // no answer in time, or another network error
        }
    }
}
