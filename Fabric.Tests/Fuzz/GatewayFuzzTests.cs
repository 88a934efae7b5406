using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CsCheck;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Tests.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Fuzz;

/// <summary>
/// Bad requests to one real node's gateway: POST /jobs with 160 bodies CsCheck draws (mutated specs the parser or
/// validator refuses, junk bytes, invalid UTF-8) under right and wrong content types, bodies over the gateway's size
/// limit (declared, and streamed in chunks), and path tricks (<c>../</c>, <c>%2e%2e</c>, long ids, unicode, NUL, query
/// junk) on every GET route of HttpGateway and on DELETE /jobs/{id}. Each is a 4xx — a problem document with a sentence
/// where it is JSON — within a bounded time, never a 5xx; afterwards the node lists no new job, its devices' contexts
/// and memory are as before, and /health still answers 200. A failure prints CsCheck's seed; set the environment
/// variable CsCheck_Seed to it to replay.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class GatewayFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int Bodies = 160;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan PerRequest = TimeSpan.FromSeconds(10);
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-gateway-fuzz-{Guid.NewGuid():N}");

    private static readonly string[] ContentTypes =
    [
        "application/json", "application/json; charset=utf-8", "text/plain", "application/xml", "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded", "application/json; charset=latin1", "", "%%%/??",
    ];

    private static readonly byte[][] Junk =
    [
        [], "null"u8.ToArray(), "[]"u8.ToArray(), "{}"u8.ToArray(), "\"job\""u8.ToArray(), "1e999"u8.ToArray(), [0xFF, 0xFE, 0x00],
        "{\"name\":\"x\",\"buffers\":[],\"tasks\":[]}"u8.ToArray(), "<job/>"u8.ToArray(), "name=x&tasks=1"u8.ToArray(),
        [.. "{\"name\":\"ab"u8, 0xC3, 0x28, .. "\",\"buffers\":[],\"tasks\":[]}"u8], // not UTF-8 inside a name
        Encoding.UTF8.GetBytes(new string('[', 5000)), Encoding.UTF8.GetBytes("{\"name\":\"" + new string('x', 100_000) + "\"}"),
    ];

    /// <summary>A body the gateway must refuse: a junk body, or a mutated spec that the parser or the validator refuses here.</summary>
    private static readonly Gen<(byte[] Body, string ContentType)> Posts = Gen.Select(
        Gen.Frequency(
            (1, Gen.Int[0, Junk.Length - 1].Select(i => Junk[i])),
            (1, Gen.Byte.Array[1, 300]),
            (6, JobJsonFuzzTests.Specs.Select(t => JobJsonFuzzTests.Mutate(JobJsonFuzzTests.Seeds[t.Seed], t.Edits)).Where(RefusedHere))),
        Gen.Int[0, ContentTypes.Length - 1].Select(i => ContentTypes[i]));

    private static bool RefusedHere(byte[] body)
    {
        try { return JobValidator.Validate(JobJson.Parse(body.AsMemory()), JobJsonFuzzTests.LargestDevice) is not null; }
        catch (FabricException) { return true; }
    }

    private static readonly string[] Ids =
    [
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "..%2f..%2f..%2fetc%2fpasswd", "%252e%252e", "job%00x", "%ff%fe",
        "%E3%82%B8%E3%83%A7%E3%83%96", "a%20b", "index", "-", "%20", new string('j', 3000), "x%2Fy", "%C0%AE%C0%AE", "job-1?tasks=maybe",
        "%7B%22a%22%3A1%7D", "%3Cscript%3E",
    ];

    /// <summary>The id-bearing routes of HttpGateway; each must refuse an id no job has.</summary>
    private static readonly string[] IdRoutes =
        ["/jobs/{id}", "/jobs/{id}/timeline", "/jobs/{id}/spec", "/jobs/{id}/events", "/jobs/{id}/outputs/{id}", "/jobs/x/outputs/{id}", "/dashboard/{id}"];

    /// <summary>Tricks on the fixed routes: appended segments are 404s; query junk is ignored or refused, never a 5xx.</summary>
    private static readonly string[] FixedRoutes = ["/health", "/nodes", "/devices", "/devices/local", "/jobs", "/metrics", "/"];

    private static readonly string[] Suffixes = ["/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/x", "/%00", "/%E2%80%AE", "/" + new string('a', 3000)];
    private static readonly string[] QueryJunk = ["?tasks=maybe", "?tasks=", "?tasks=true&tasks=false", "?%%%", "?from=-1&max=99999999999", "?x=%00", "?" + new string('q', 3000)];

    private sealed record Answer(int Status, string? ContentType, string Body);

    [Fact]
    public async Task Bad_requests_get_a_4xx_problem_and_leave_no_job_no_context_and_a_healthy_node()
    {
        var ready = Path.Combine(_root, "n1.ready.json");
        using var node = FabricProcess.Start("n1", "node", "--name", "n1", "--port", "0", "--http-port", "0", "--ready-file", ready,
            "--devices", "1", "--device-memory", "16MiB", "--data-dir", Path.Combine(_root, "n1"), "--sqlite", Path.Combine(_root, "fabric.db"));
        var gateway = new Uri((await node.WaitForReadyAsync(ready, TimeSpan.FromSeconds(60))).Gateway!);
        using var http = new HttpClient { BaseAddress = gateway, Timeout = PerRequest };
        var jobsBefore = await JsonArrayAsync(http, "/jobs");
        var devicesBefore = Counters(await JsonArrayAsync(http, "/devices/local"));
        var statuses = new Dictionary<int, int>();
        var clock = Stopwatch.StartNew();
        void Count(int status) { lock (statuses) statuses[status] = statuses.GetValueOrDefault(status) + 1; }

        // POST /jobs: every junk body, then bodies drawn at random, each refused with a 4xx problem document under any content type.
        foreach (var junk in Junk)
        {
            using var content = new ByteArrayContent(junk);
            content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            using var response = await http.PostAsync("/jobs", content);
            var answer = new Answer((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync());
            AssertRefused(answer, $"POST /jobs {Clip(Encoding.UTF8.GetString(junk), 300)}", jsonRequired: true);
            Count(answer.Status);
        }
        await Posts.SampleAsync(async (body, contentType) =>
        {
            using var content = new ByteArrayContent(body);
            if (contentType.Length > 0) content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            using var response = await http.PostAsync("/jobs", content);
            var answer = new Answer((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync());
            AssertRefused(answer, $"POST /jobs ({contentType}) {Clip(Encoding.UTF8.GetString(body), 300)}", jsonRequired: true);
            Count(answer.Status);
        }, iter: Bodies, threads: 1, writeLine: output.WriteLine);

        // A body over the limit, declared: refused from its Content-Length alone, before the gateway reads it.
        var declared = await RawAsync(gateway, "POST", "/jobs", "Content-Type: application/json\r\nContent-Length: 1073741824\r\n", "{\"name\":");
        AssertRefused(declared, "POST /jobs with Content-Length 1 GiB", jsonRequired: true);
        Assert.Equal(413, declared.Status);
        var limit = long.Parse(Regex.Match(declared.Body, @"limit of ([\d,]+) bytes").Groups[1].Value.Replace(",", ""));
        Count(declared.Status);
        // ... and streamed in chunks with no length: refused once the gateway has read one byte past the limit.
        var streamed = new byte[limit + 1];
        streamed.AsSpan().Fill((byte)' ');
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/jobs") { Content = new ByteArrayContent(streamed) })
        {
            request.Headers.TransferEncodingChunked = true;
            request.Content.Headers.ContentType = new("application/json");
            using var response = await http.SendAsync(request);
            var answer = new Answer((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync());
            AssertRefused(answer, $"POST /jobs with {streamed.Length:N0} bytes in chunks", jsonRequired: true);
            Assert.Equal(413, answer.Status);
            Assert.Contains($"limit of {limit:N0} bytes", answer.Body);
            Count(answer.Status);
        }

        // Path tricks, sent raw so that no client library normalizes them first.
        var requests = 0;
        foreach (var route in IdRoutes)
            foreach (var id in Ids)
            {
                var answer = await RawAsync(gateway, "GET", route.Replace("{id}", id));
                AssertRefused(answer, $"GET {route.Replace("{id}", id[..Math.Min(id.Length, 80)])}", jsonRequired: false);
                Count(answer.Status);
                requests++;
            }
        foreach (var id in Ids)
        {
            var answer = await RawAsync(gateway, "DELETE", $"/jobs/{id}");
            AssertRefused(answer, $"DELETE /jobs/{id[..Math.Min(id.Length, 80)]}", jsonRequired: false);
            Count(answer.Status);
            requests++;
        }
        foreach (var route in FixedRoutes)
        {
            foreach (var suffix in Suffixes)
            {
                var answer = await RawAsync(gateway, "GET", route.TrimEnd('/') + suffix);
                AssertRefused(answer, $"GET {route}{suffix[..Math.Min(suffix.Length, 80)]}", jsonRequired: false);
                Count(answer.Status);
                requests++;
            }
            foreach (var query in QueryJunk)
            {
                // The routes that read a query refuse junk in it; the others ignore it: never a 5xx either way.
                var answer = await RawAsync(gateway, "GET", route + query);
                Assert.True(answer.Status is >= 200 and < 500, $"GET {route}{query[..Math.Min(query.Length, 80)]}: {answer.Status} {answer.Body}");
                if (answer.Status >= 400) AssertRefused(answer, $"GET {route}{query}", jsonRequired: false);
                Count(answer.Status);
                requests++;
            }
        }

        // Literal dot segments are resolved before routing (RFC 3986): they reach the app's own routes or nothing, never a file.
        foreach (var target in new[] { "/../../../etc/passwd", "/dashboard/../../etc/passwd", "/jobs/../../Fabric.Node.dll", "/./jobs/./x/../../..%2f",
                     "/dashboard/%2e%2e/%2e%2e/etc/passwd", "/jobs/%2e%2e/%2E%2E/%2e%2e/etc/passwd" })
        {
            var answer = await RawAsync(gateway, "GET", target);
            AssertRefused(answer, $"GET {target}", jsonRequired: false);
            Count(answer.Status);
            requests++;
        }
        // Kestrel decodes %2e before it resolves them: /jobs/%2e%2e is the page at /, as /jobs/.. is.
        var page = await RawAsync(gateway, "GET", "/");
        foreach (var target in new[] { "/jobs/..", "/jobs/%2e%2e", "/dashboard/%2E%2E" })
        {
            var answer = await RawAsync(gateway, "GET", target);
            Assert.Equal((page.Status, page.Body), (answer.Status, answer.Body));
            requests++;
        }
        var resolved = await RawAsync(gateway, "GET", "/jobs/x/../../health");
        Assert.Equal(200, resolved.Status);
        Assert.Contains("\"node\":\"n1\"", resolved.Body);

        var jobsAfter = await JsonArrayAsync(http, "/jobs");
        var devicesAfter = Counters(await JsonArrayAsync(http, "/devices/local"));
        using var health = await http.GetAsync("/health");
        var elapsed = clock.Elapsed;
        output.WriteLine($"{Junk.Length + Bodies + 2} posts and {requests} other requests in {elapsed.TotalSeconds:0.0} s; statuses: " +
                         string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Value}×{p.Key}")));

        Assert.Equal(jobsBefore.Select(j => j.GetProperty("jobId").GetString()), jobsAfter.Select(j => j.GetProperty("jobId").GetString()));
        Assert.Equal(devicesBefore, devicesAfter);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.False(node.HasExited, node.Output);
        Assert.True(elapsed < Budget, $"the requests took {elapsed.TotalSeconds:0.0} s, over the budget of {Budget.TotalSeconds} s");
        Assert.Contains(400, statuses.Keys);
        Assert.Contains(404, statuses.Keys);
    }

    /// <summary>A 4xx; when JSON (required for POST /jobs), a problem document whose message is a sentence.</summary>
    private static void AssertRefused(Answer answer, string what, bool jsonRequired)
    {
        Assert.True(answer.Status is >= 400 and < 500, $"{what}: {answer.Status} {answer.Body[..Math.Min(answer.Body.Length, 2000)]}");
        var json = answer.ContentType is "application/json" or "application/problem+json";
        if (jsonRequired) Assert.True(json, $"{what}: {answer.Status} as {answer.ContentType ?? "nothing"}, not a problem document");
        if (!json) return;
        Assert.Equal("application/problem+json", answer.ContentType);
        var problem = JsonDocument.Parse(answer.Body).RootElement;
        var code = problem.GetProperty("code").GetString();
        var message = problem.GetProperty("message").GetString();
        Assert.True(Enum.TryParse<ErrorCode>(code, out _), $"{what}: '{code}' is not an error code");
        Assert.True(message is { Length: > 12 } && message.Contains(' '), $"{what}: '{message}' is not a sentence");
    }

    private static async Task<JsonElement[]> JsonArrayAsync(HttpClient http, string path)
    {
        using var response = await http.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return [.. JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.EnumerateArray().Select(e => e.Clone())];
    }

    /// <summary>Each local device's open contexts, memory used, allocations and exports.</summary>
    private static string[] Counters(JsonElement[] devices) =>
        [.. devices.Select(d => $"{d.GetProperty("id")}: contexts {d.GetProperty("openContexts")}, used {d.GetProperty("memoryUsed")}, " +
                                $"allocations {d.GetProperty("allocations")}, exports {d.GetProperty("exports")}")];

    /// <summary>One HTTP/1.0 request over a socket, its target exactly as given; the answer read to the server's close, in bounded time.</summary>
    private static async Task<Answer> RawAsync(Uri gateway, string method, string target, string headers = "", string body = "")
    {
        using var cancel = new CancellationTokenSource(PerRequest);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, gateway.Port), cancel.Token);
        var request = Encoding.UTF8.GetBytes($"{method} {target} HTTP/1.0\r\nHost: {gateway.Authority}\r\n{headers}\r\n{body}");
        await socket.SendAsync(request, SocketFlags.None, cancel.Token);
        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            for (int read; (read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel.Token)) > 0;)
                received.Write(buffer, 0, read);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset && received.Length > 0)
        {
            // A refusal before the declared body was sent: the server closes with it unread.
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"{method} {target[..Math.Min(target.Length, 80)]}: no answer within {PerRequest.TotalSeconds} s");
        }
        var text = Encoding.UTF8.GetString(received.ToArray());
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(split > 0, $"{method} {target[..Math.Min(target.Length, 80)]}: not an HTTP answer: {text[..Math.Min(text.Length, 200)]}");
        var head = text[..split].Split("\r\n");
        var status = int.Parse(head[0].Split(' ')[1]);
        var type = head.Skip(1).Select(h => h.Split(':', 2)).FirstOrDefault(h => h[0].Equals("Content-Type", StringComparison.OrdinalIgnoreCase))?[1].Trim();
        return new Answer(status, type?.Split(';')[0].Trim(), text[(split + 4)..]);
    }

    private static string Clip(string text, int length) => text.Length <= length ? text : text[..length] + "…";

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }
}
