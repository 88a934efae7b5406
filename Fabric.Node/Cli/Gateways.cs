using System.CommandLine;
using System.Diagnostics;

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

    /// <summary>An http(s) URL with a host, without a trailing slash; anything else → <see cref="ArgumentException"/>.</summary>
    public static string Check(string text)
    {
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0)
            return uri.GetLeftPart(UriPartial.Path).TrimEnd('/');
        var hint = text.Contains("://") ? "" : $"; did you mean http://{text}?";
        throw new ArgumentException($"--gateway: '{text}' is not an http:// or https:// URL{hint}");
    }
}

/// <summary>
/// The gateways one command may use: those it was given, then those it learns from <c>GET /nodes</c>. A request goes to
/// the gateway that answered last; one that fails transiently (not reachable, no answer in time, a 5xx while a lost
/// node's jobs move) is asked again, and the request moves on to the next gateway, round after round, until one answers
/// or the patience given runs out. A refusal (4xx) is thrown at once.
/// </summary>
public sealed class GatewaySet : IDisposable
{
    /// <summary>How long one HTTP request may take before it counts as a failure (a gateway answers a slow read with 503 after 5 s).</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(500);

    private readonly List<GatewayClient> _clients = [];
    private int _current;

    /// <param name="urls">The gateways, in order of preference.</param>
    public GatewaySet(IEnumerable<string> urls)
    {
        foreach (var url in urls) Add(url);
        if (_clients.Count == 0) throw new ArgumentException("a gateway set needs at least one gateway", nameof(urls));
    }

    /// <summary>Told, in one sentence, when requests move to another gateway. Default: standard error.</summary>
    public Action<string> Note { get; set; } = message => Console.Error.WriteLine(message);

    /// <summary>The gateway the next request goes to.</summary>
    public GatewayClient Current => _clients[_current];

    public IReadOnlyList<string> Urls => [.. _clients.Select(c => c.BaseUrl)];

    private bool Add(string url)
    {
        var checkedUrl = Gateways.Check(url);
        if (_clients.Any(c => c.BaseUrl == checkedUrl)) return false;
        _clients.Add(new GatewayClient(checkedUrl, RequestTimeout));
        return true;
    }

    /// <summary>How long a read (a listing, a job, an output) keeps trying: it outlasts a node loss (~10 s) and its jobs moving.</summary>
    public static readonly TimeSpan ReadPatience = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Runs <paramref name="request"/> against the gateways until one answers: each at least once, and again while
    /// <paramref name="patience"/> lasts. When none answered → the last failure, as a <see cref="GatewayException"/>.
    /// </summary>
    public async Task<T> AskAsync<T>(Func<GatewayClient, CancellationToken, Task<T>> request, TimeSpan patience, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        for (var attempt = 1; ; attempt++)
        {
            var client = Current;
            try
            {
                return await request(client, cancel);
            }
            catch (GatewayException e) when (e.Transient)
            {
                if (attempt >= _clients.Count && clock.Elapsed >= patience)
                    throw _clients.Count == 1 && patience == TimeSpan.Zero ? e
                        : new GatewayException($"no gateway answered for {clock.Elapsed.TotalSeconds:0} s (tried {string.Join(", ", Urls)}); the last: {e.Message}",
                            answered: e.Answered);
                if (_clients.Count > 1)
                {
                    _current = (_current + 1) % _clients.Count;
                    Note($"{e.Message}; trying {Current.BaseUrl}");
                }
                // A full round without an answer: the cluster is busy moving jobs, or the gateways are gone. Wait a little.
                if (attempt % _clients.Count == 0) await Task.Delay(Pause, cancel);
            }
        }
    }

    /// <summary>Whether the last <see cref="LearnAsync"/> heard the cluster's list of gateways (false before the first).</summary>
    public bool Learned { get; private set; }

    /// <summary>
    /// Adds the gateways that the cluster's members publish (<c>GET /nodes</c>) to those known, asking each known gateway
    /// for up to <paramref name="patience"/>; when none answers, <see cref="Learned"/> is false and nothing is added.
    /// Learn early and again while it fails: once the only gateway known is gone, there is no one left to ask.
    /// </summary>
    public async Task LearnAsync(TimeSpan patience, CancellationToken cancel)
    {
        try
        {
            var nodes = await AskAsync((c, t) => c.NodesAsync(t), patience, cancel);
            foreach (var node in nodes.Nodes)
                if (node.Gateway is { } url && IsGateway(url)) Add(url);
            Learned = true;
        }
        catch (GatewayException) { Learned = false; }
    }

    private static bool IsGateway(string url)
    {
        try { Gateways.Check(url); return true; }
        catch (ArgumentException) { return false; }
    }

    public void Dispose()
    {
        foreach (var client in _clients) client.Dispose();
    }
}
