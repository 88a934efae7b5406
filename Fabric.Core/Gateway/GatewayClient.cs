using System.Net.Http.Json;
using Fabric.Core.Protocol;

namespace Fabric.Core.Gateway;

/// <summary>
/// One node's HTTP gateway, for a program that submits jobs, follows them and fetches their outputs without the
/// <c>fabric</c> executable (the CLI uses it too). Failures become a <see cref="GatewayException"/> with one clear
/// sentence. <see cref="GatewaySet"/> spreads requests over several gateways so that a node loss does not end them.
/// </summary>
/// <param name="baseUrl">The gateway, e.g. <c>http://127.0.0.1:5080</c>.</param>
/// <param name="timeout">How long one request may take (default 60 s).</param>
/// <param name="token">The gateway's API token for changes (default: <c>$FABRIC_API_TOKEN</c>).</param>
public sealed class GatewayClient(string baseUrl, TimeSpan? timeout = null, string? token = null) : IDisposable
{
    /// <summary>The environment variable the API token is read from when none is given.</summary>
    public const string TokenVariable = "FABRIC_API_TOKEN";

    private readonly HttpClient _http = Client(baseUrl, timeout, token ?? Environment.GetEnvironmentVariable(TokenVariable));

    /// <summary>An HTTP client for the gateway at <paramref name="baseUrl"/>, sending the API token when there is one.</summary>
    private static HttpClient Client(string baseUrl, TimeSpan? timeout, string? token)
    {
        var http = new HttpClient { BaseAddress = new Uri(GatewayUrl.Check(baseUrl) + "/"), Timeout = timeout ?? TimeSpan.FromSeconds(60) };
        if (!string.IsNullOrEmpty(token)) http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    public const string DefaultUrl = "http://127.0.0.1:5080";

    /// <summary>The gateway's URL, without a trailing slash.</summary>
    public string BaseUrl => _http.BaseAddress!.ToString().TrimEnd('/');

    public Task<DeviceInfo[]> DevicesAsync(CancellationToken cancel) => GetAsync<DeviceInfo[]>("devices", cancel);
    public Task<DeviceInfo[]> LocalDevicesAsync(CancellationToken cancel) => GetAsync<DeviceInfo[]>("devices/local", cancel);
    public Task<NodeList> NodesAsync(CancellationToken cancel) => GetAsync<NodeList>("nodes", cancel);
    public Task<Health> HealthAsync(CancellationToken cancel) => GetAsync<Health>("health", cancel);

    public Task<JobView[]> JobsAsync(CancellationToken cancel) => GetAsync<JobView[]>("jobs", cancel);

    /// <summary>Every job without its tasks' records (<c>GET /jobs?tasks=false</c>): status, counts, stages and outputs only.</summary>
    public Task<JobView[]> JobsBriefAsync(CancellationToken cancel) => GetAsync<JobView[]>("jobs?tasks=false", cancel);
    public Task<JobView> JobAsync(string id, CancellationToken cancel) => GetAsync<JobView>($"jobs/{Uri.EscapeDataString(id)}", cancel);

    /// <summary>The job's status and counts without each task's record (<see cref="JobView.TaskDetails"/> empty): cheap to poll however wide the job.</summary>
    public Task<JobView> JobBriefAsync(string id, CancellationToken cancel) => GetAsync<JobView>($"jobs/{Uri.EscapeDataString(id)}?tasks=false", cancel);

    /// <summary>A job's events from sequence number <paramref name="from"/> on, as many as the gateway answers at once (10 000).</summary>
    public Task<JobHistoryEntry[]> EventsAsync(string id, long from, CancellationToken cancel) =>
        GetAsync<JobHistoryEntry[]>($"jobs/{Uri.EscapeDataString(id)}/events?from={from}", cancel);

    /// <summary>Submits a job spec (JSON) → its id; a refused spec → <see cref="GatewayException"/> with the code and sentence.</summary>
    public Task<string> SubmitAsync(string json, CancellationToken cancel, string? jobId = null) =>
        PostJobAsync(() => new StringContent(json, System.Text.Encoding.UTF8, "application/json"), jobId, cancel);

    /// <summary>Submits a job spec, sent as compact JSON (<see cref="Jobs.JobJson.WriteCompact"/>), as <see cref="SubmitAsync(string, CancellationToken, string?)"/> does.</summary>
    public Task<string> SubmitAsync(Jobs.JobSpec spec, CancellationToken cancel, string? jobId = null)
    {
        var json = Jobs.JobJson.WriteCompact(spec);
        return PostJobAsync(() => new ByteArrayContent(json) { Headers = { ContentType = new("application/json") { CharSet = "utf-8" } } }, jobId, cancel);
    }

    private async Task<string> PostJobAsync(Func<HttpContent> body, string? jobId, CancellationToken cancel)
    {
        var path = jobId is null ? "jobs" : $"jobs?id={Uri.EscapeDataString(jobId)}";
        var response = await SendAsync(() => _http.PostAsync(path, body(), cancel));
        using (response)
        {
            if (response.IsSuccessStatusCode)
                return (await response.Content.ReadFromJsonAsync<JobAccepted>(GatewayJson.Options, cancel))!.JobId;
            throw await ProblemAsync(response, cancel);
        }
    }

    /// <summary>The bytes of an output of a completed job, or the spec as JSON (<paramref name="name"/> null).</summary>
    public async Task<byte[]> OutputAsync(string id, string name, CancellationToken cancel)
    {
        using var response = await SendAsync(() => _http.GetAsync($"jobs/{Uri.EscapeDataString(id)}/outputs/{Uri.EscapeDataString(name)}", cancel));
        if (response.IsSuccessStatusCode) return await response.Content.ReadAsByteArrayAsync(cancel);
        throw await ProblemAsync(response, cancel);
    }

    /// <summary>Cancels a running job → the job, Cancelled; an ended or unknown job → <see cref="GatewayException"/> (not transient).</summary>
    public async Task<JobView> CancelAsync(string id, CancellationToken cancel)
    {
        using var response = await SendAsync(() => _http.DeleteAsync($"jobs/{Uri.EscapeDataString(id)}", cancel));
        if (response.IsSuccessStatusCode) return (await response.Content.ReadFromJsonAsync<JobView>(GatewayJson.Options, cancel))!;
        throw await ProblemAsync(response, cancel);
    }

    public async Task<string> SpecAsync(string id, CancellationToken cancel)
    {
        using var response = await SendAsync(() => _http.GetAsync($"jobs/{Uri.EscapeDataString(id)}/spec", cancel));
        if (response.IsSuccessStatusCode) return await response.Content.ReadAsStringAsync(cancel);
        throw await ProblemAsync(response, cancel);
    }

    private static async Task<GatewayException> ProblemAsync(HttpResponseMessage response, CancellationToken cancel)
    {
        try
        {
            var problem = await response.Content.ReadFromJsonAsync<Problem>(GatewayJson.Options, cancel);
            return new GatewayException($"{problem!.Code}: {problem.Message}", Transient(response), answered: true);
        }
        catch (System.Text.Json.JsonException)
        {
            return new GatewayException($"the gateway answered {(int)response.StatusCode} {response.ReasonPhrase}", Transient(response), answered: true);
        }
    }

    /// <summary>
    /// Runs a gateway request again (every 0.5 s, up to <paramref name="attempts"/> times) while it fails transiently —
    /// a node restarting, a job moving after a node loss; a refusal is thrown at once.
    /// </summary>
    public static async Task<T> RetryAsync<T>(Func<Task<T>> request, CancellationToken cancel, int attempts = 20)
    {
        for (var attempt = 1; ; attempt++)
        {
            try { return await request(); }
            catch (GatewayException e) when (e.Transient && attempt < attempts) { await Task.Delay(500, cancel); }
        }
    }

    /// <summary>A 5xx answer (e.g. 503 while a lost node's jobs move) may go another way if asked again; a 4xx will not.</summary>
    private static bool Transient(HttpResponseMessage response) => (int)response.StatusCode >= 500;

    private async Task<HttpResponseMessage> SendAsync(Func<Task<HttpResponseMessage>> send)
    {
        try { return await send(); }
        catch (HttpRequestException e)
        {
            throw new GatewayException($"cannot reach the Fabric gateway at {_http.BaseAddress}: {e.Message} (is a node running? see fabric node --help)");
        }
        catch (TaskCanceledException e) when (e.InnerException is TimeoutException)
        {
            throw new GatewayException($"the Fabric gateway at {_http.BaseAddress} did not answer within {_http.Timeout.TotalSeconds:0} s");
        }
    }

    public async Task<T> GetAsync<T>(string path, CancellationToken cancel)
    {
        try
        {
            using var response = await _http.GetAsync(path, cancel);
            // /health answers 503 with its body while the node is not Up yet; anywhere else a failure is a problem.
            if (!response.IsSuccessStatusCode && !(path == "health" && response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable))
                throw await ProblemAsync(response, cancel);
            var body = await response.Content.ReadFromJsonAsync<T>(GatewayJson.Options, cancel);
            return body ?? throw new GatewayException($"the gateway at {_http.BaseAddress} answered {path} with nothing");
        }
        catch (HttpRequestException e)
        {
            throw new GatewayException($"cannot reach the Fabric gateway at {_http.BaseAddress}: {e.Message} (is a node running? see fabric node --help)");
        }
        catch (TaskCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new GatewayException($"the Fabric gateway at {_http.BaseAddress} did not answer within {_http.Timeout.TotalSeconds:0} s");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new GatewayException($"the gateway at {_http.BaseAddress} answered {path} with something that is not Fabric JSON: {e.Message}");
        }
    }

    public void Dispose() => _http.Dispose();
}
