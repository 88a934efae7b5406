using System.Text.Json;

namespace Fabric.Node.Hosting;

/// <summary>
/// What a running <c>fabric node</c> actually bound — the ports it was given, or the ones the system chose for port 0 —
/// as written to its <c>--ready-file</c> once it is Up in the cluster. Whoever started the node reads its addresses here
/// instead of guessing free ports beforehand (a port free a moment ago may be taken by any process in between).
/// </summary>
/// <param name="Name">The node's name.</param>
/// <param name="Pid">The node's process id.</param>
/// <param name="Address">Its cluster address, e.g. <c>akka.tcp://fabric@127.0.0.1:40123</c>.</param>
/// <param name="Host">The host of <paramref name="Address"/> (the advertised one).</param>
/// <param name="Port">The Akka endpoint's port.</param>
/// <param name="Gateway">The HTTP gateway's URL, or null when the node has none.</param>
/// <param name="HttpPort">The HTTP gateway's port, or null.</param>
/// <param name="DataEndpoint">The data plane's <c>host:port</c>.</param>
/// <param name="DataPort">The data plane's port.</param>
public sealed record NodeEndpoints(string Name, int Pid, string Address, string Host, int Port, string? Gateway, int? HttpPort, string DataEndpoint, int DataPort)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary><c>host:port</c> of the Akka endpoint: what <c>--seeds</c> and <c>FabricClient.ConnectAsync</c> take.</summary>
    public string Endpoint => $"{Host}:{Port}";

    /// <summary>Writes the file atomically: a reader sees no file or the whole of it, never a part.</summary>
    public void Write(string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temporary = $"{full}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(this, Json));
        File.Move(temporary, full, overwrite: true);
    }

    /// <summary>The endpoints in <paramref name="path"/>, or null while there is no such file.</summary>
    public static NodeEndpoints? TryRead(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        return JsonSerializer.Deserialize<NodeEndpoints>(text, Json) ?? throw new InvalidDataException($"{path} holds no node endpoints");
    }
}
