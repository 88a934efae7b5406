using System.Diagnostics;

namespace Fabric.Core.Gateway;

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

    /// <summary>Told, in one sentence, when requests move to another gateway (the CLI writes it to standard error). Default: nothing.</summary>
    public Action<string> Note { get; set; } = _ => { };

    /// <summary>The gateway the next request goes to.</summary>
    public GatewayClient Current => _clients[_current];

    public IReadOnlyList<string> Urls => [.. _clients.Select(c => c.BaseUrl)];

    private bool Add(string url)
    {
        var checkedUrl = GatewayUrl.Check(url);
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
        try { GatewayUrl.Check(url); return true; }
        catch (ArgumentException) { return false; }
    }

    public void Dispose()
    {
        foreach (var client in _clients) client.Dispose();
    }

    /// <summary>Whether a job's status is one it ends in: Completed, Failed or Cancelled.</summary>
    public static bool HasEnded(JobView view) => view.Status is "Completed" or "Failed" or "Cancelled";

    /// <summary>
    /// Follows job <paramref name="jobId"/> until it ends or <paramref name="timeout"/> has passed, telling
    /// <paramref name="onView"/> each answer (about five a second; brief ones, without task details, while it runs) → the
    /// last one, in full once it has ended (check <see cref="HasEnded"/>). It
    /// rides through the loss of the node it asks: it learns the cluster's other gateways at the start and every 10 s,
    /// and asks them when one fails. An unknown job, and no gateway answering at the start → <see cref="GatewayException"/>.
    /// </summary>
    public async Task<JobView> FollowAsync(string jobId, TimeSpan timeout, Action<JobView> onView, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        TimeSpan Left() => timeout - clock.Elapsed > TimeSpan.Zero ? timeout - clock.Elapsed : TimeSpan.Zero;
        await LearnAsync(TimeSpan.FromSeconds(5), cancel);
        var learnedAt = clock.Elapsed;
        var view = await AskAsync((c, t) => c.JobBriefAsync(jobId, t), Left(), cancel);
        while (true)
        {
            if (HasEnded(view))
            {
                try { view = await AskAsync((c, t) => c.JobAsync(jobId, t), ReadPatience, cancel); }
                catch (GatewayException) { } // the brief one says how it ended
                onView(view);
                return view;
            }
            onView(view);
            if (Left() == TimeSpan.Zero) return view;
            await Task.Delay(200, cancel);
            // Again every 10 s (members come and go), and at once while the last try heard no list.
            if (!Learned || clock.Elapsed - learnedAt > TimeSpan.FromSeconds(10))
            {
                await LearnAsync(TimeSpan.Zero, cancel);
                learnedAt = clock.Elapsed;
            }
            try { view = await AskAsync((c, t) => c.JobBriefAsync(jobId, t), Left(), cancel); }
            catch (GatewayException) when (Left() == TimeSpan.Zero) { return view; }
        }
    }
}
