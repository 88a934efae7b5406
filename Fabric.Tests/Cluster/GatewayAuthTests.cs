using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Fabric.Core.Jobs;
using Fabric.Node.Cli;
using Fabric.Node.Gateway;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// A real node started with an API token (from <c>FABRIC_API_TOKEN</c>): changes without it, or with another, are
/// refused 401 EACCES and change nothing; reads from this machine stay open; the CLI sends the token it is given.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class GatewayAuthTests(ITestOutputHelper output) : IDisposable
{
    private const string Token = "t0ken-of-this-test-0123456789";
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-auth-{Guid.NewGuid():N}");

    [Fact]
    public async Task Changes_need_the_token_reads_from_this_machine_do_not_and_the_cli_sends_it()
    {
        var ready = Path.Combine(_root, "n1.ready.json");
        using var node = FabricProcess.Start("n1", new Dictionary<string, string> { [GatewayAuth.TokenVariable] = Token },
            "node", "--name", "n1", "--port", "0", "--http-port", "0", "--ready-file", ready, "--devices", "1", "--device-memory", "16MiB",
            "--data-dir", Path.Combine(_root, "n1"), "--sqlite", Path.Combine(_root, "fabric.db"));
        var gateway = (await node.WaitForReadyAsync(ready, TimeSpan.FromSeconds(60))).Gateway!;
        var spec = JobJson.Write(new JobBuilder("guarded").Zeros("x", 64).Output("y", 64).Task("copy", t => t.Copy("y", "x")).Build());
        var file = Path.Combine(_root, "guarded.job.json");
        await File.WriteAllTextAsync(file, spec);
        using var http = new HttpClient { BaseAddress = new Uri(gateway + "/") };

        using var anonymous = await http.PostAsync("jobs", new StringContent(spec, Encoding.UTF8, "application/json"));
        using var wrong = await SendAsync(http, HttpMethod.Post, "jobs", "not-the-token-at-all", spec);
        using var cancel = await http.DeleteAsync("jobs/anything");
        using var read = await http.GetAsync("jobs");
        var listedBefore = await read.Content.ReadAsStringAsync();
        using var withoutToken = FabricProcess.Start("fabric submit (no token)", "submit", file, "--gateway", gateway);
        var refusedExit = await withoutToken.WaitForExitAsync(TimeSpan.FromSeconds(60));
        using var withToken = FabricProcess.Start("fabric submit", new Dictionary<string, string> { [GatewayAuth.TokenVariable] = Token }, "submit", file, "--gateway", gateway);
        var exit = await withToken.WaitForExitAsync(TimeSpan.FromSeconds(60));
        using var listing = await http.GetAsync("jobs");
        var jobs = JsonDocument.Parse(await listing.Content.ReadAsStringAsync()).RootElement.EnumerateArray().Select(j => j.GetProperty("jobId").GetString()).ToList();

        output.WriteLine($"{withoutToken.Errors}\n{withToken.Output}{withToken.Errors}");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.ToString());
        var problem = JsonDocument.Parse(await anonymous.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("EACCES", problem.GetProperty("code").GetString());
        Assert.StartsWith("POST /jobs needs this gateway's API token", problem.GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("POST /jobs: the API token given is not this gateway's",
            JsonDocument.Parse(await wrong.Content.ReadAsStringAsync()).RootElement.GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, cancel.StatusCode);
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal("[]", listedBefore);
        Assert.Equal(1, refusedExit);
        Assert.Contains("fabric submit: EACCES: POST /jobs needs this gateway's API token", withoutToken.Errors);
        Assert.Equal(0, exit);
        Assert.Equal([withToken.Output.Trim()], jobs);
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, string path, string token, string body)
    {
        var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http.SendAsync(request);
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }
}
