using System.CommandLine;
using Fabric.Core.Gateway;

namespace Fabric.Node.Cli;

/// <summary>The <c>--gateway</c> option of the commands that talk to a node's HTTP gateway, and its parsing.</summary>
public static class Gateways
{
    public static Option<string[]> Option() => new("--gateway")
    {
        Description = "A node's HTTP gateway, e.g. http://127.0.0.1:5080; several, comma-separated or repeated, are tried in turn " +
                      $"when one does not answer. Default: $FABRIC_GATEWAY, else {GatewayClient.DefaultUrl}.",
    };

    /// <summary>The gateways given (or the default), each checked; a malformed one → <see cref="ArgumentException"/> with a sentence.</summary>
    /// <summary>
    /// Runs the body of <paramref name="command"/> with the gateways of its <c>--gateway</c> option: a malformed URL is a
    /// usage error (exit 2); a gateway that fails, or a refusal, one sentence on standard error (exit 1).
    /// </summary>
    public static async Task<int> RunAsync(string command, string[]? given, Func<GatewaySet, Task<int>> body)
    {
        GatewaySet gateways;
        try { gateways = new GatewaySet(Read(given, Environment.GetEnvironmentVariable)); }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"fabric {command}: {e.Message}");
            return 2;
        }
        using (gateways)
        {
            gateways.Note = message => Console.Error.WriteLine(message);
            try { return await body(gateways); }
            catch (Exception e) when (e is GatewayException or Fabric.Core.FabricException)
            {
                await Console.Error.WriteLineAsync($"fabric {command}: {e.Message}");
                return 1;
            }
        }
    }

    public static IReadOnlyList<string> Read(string[]? given, Func<string, string?> environment)
    {
        var texts = given is { Length: > 0 } ? given : [environment("FABRIC_GATEWAY") ?? GatewayClient.DefaultUrl];
        var urls = texts.SelectMany(t => t.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Select(Check).Distinct().ToList();
        return urls.Count > 0 ? urls : throw new ArgumentException("--gateway: no URL given");
    }

    /// <summary>An http(s) URL with a host, without a trailing slash; anything else → <see cref="ArgumentException"/> naming the option.</summary>
    public static string Check(string text)
    {
        try { return GatewayUrl.Check(text); }
        catch (ArgumentException e) { throw new ArgumentException($"--gateway: {e.Message}"); }
    }
}
