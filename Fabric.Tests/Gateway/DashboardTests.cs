using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Fabric.Node.Gateway;
using Fabric.Tests.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Gateway;

/// <summary>
/// The dashboard's files as a real node's gateway serves them: the page at <c>/</c>, its files under <c>/dashboard/</c>
/// with their content types, cache headers and entity tags; a file it does not have is a 404 problem document.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class DashboardTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-dashboard-{Guid.NewGuid():N}");

    [Fact]
    public async Task The_page_and_its_files_are_served_with_their_types_and_an_unknown_file_is_a_404_problem()
    {
        var ready = Path.Combine(_root, "n1.ready.json");
        using var node = FabricProcess.Start("n1", "node", "--name", "n1", "--port", "0", "--http-port", "0", "--ready-file", ready,
            "--devices", "1", "--device-memory", "16MiB", "--data-dir", Path.Combine(_root, "n1"), "--sqlite", Path.Combine(_root, "fabric.db"));
        var gateway = (await node.WaitForReadyAsync(ready, TimeSpan.FromSeconds(60))).Gateway!;
        using var http = new HttpClient { BaseAddress = new Uri(gateway + "/") };

        using var page = await http.GetAsync("");
        var html = await page.Content.ReadAsStringAsync();
        var files = Dashboard.Files.Order().ToList();
        var assets = new Dictionary<string, HttpResponseMessage>();
        foreach (var file in files.Where(f => f != "index.html")) assets[file] = await http.GetAsync($"dashboard/{file}");
        var script = assets["dashboard.js"];
        using var again = new HttpRequestMessage(HttpMethod.Get, "dashboard/dashboard.js");
        again.Headers.IfNoneMatch.Add(EntityTagHeaderValue.Parse(script.Headers.ETag!.ToString()));
        using var unchanged = await http.SendAsync(again);
        using var missing = await http.GetAsync("dashboard/nothing.js");
        var problem = JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement;

        output.WriteLine($"{node.Output}\nfiles: {string.Join(", ", files)}");
        Assert.Equal(["dashboard.css", "dashboard.js", "favicon.svg", "index.html"], files);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        Assert.Equal("no-cache", page.Headers.CacheControl!.ToString());
        // Every file the page names is one the gateway serves.
        foreach (var file in files.Where(f => f != "index.html"))
            Assert.Contains($"dashboard/{file}", html);
        Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
        Assert.Equal("text/css", assets["dashboard.css"].Content.Headers.ContentType!.MediaType);
        Assert.Equal("image/svg+xml", assets["favicon.svg"].Content.Headers.ContentType!.MediaType);
        Assert.All(assets.Values, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
        Assert.All(assets.Values, a => Assert.Equal("public, max-age=300", a.Headers.CacheControl!.ToString()));
        Assert.Contains("fetch(path", await script.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotModified, unchanged.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType!.MediaType);
        Assert.Equal("ENOENT", problem.GetProperty("code").GetString());
        Assert.Equal("the dashboard has no file nothing.js (it has dashboard.css, dashboard.js, favicon.svg, index.html)", problem.GetProperty("message").GetString());
        foreach (var asset in assets.Values) asset.Dispose();
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }
}
