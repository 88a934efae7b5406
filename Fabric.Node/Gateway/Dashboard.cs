using System.Collections.Frozen;
using System.Security.Cryptography;
using Fabric.Core;
using Fabric.Core.Gateway;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Fabric.Node.Gateway;

/// <summary>
/// The web dashboard every gateway serves: <c>GET /</c> is its page, <c>GET /dashboard/{file}</c> its script, style and
/// icon. Plain files embedded in this assembly (<c>Gateway/Dashboard/</c>), fetching nothing but the gateway's own JSON
/// (<c>/health</c>, <c>/nodes</c>, <c>/devices</c>, <c>/jobs</c>, <c>/jobs/{id}</c>, <c>/jobs/{id}/timeline</c>), which
/// the page polls. <c>/?job=ID</c> opens with that job's timeline shown.
/// </summary>
public static class Dashboard
{
    /// <summary>The page's path under which its files are served.</summary>
    public const string AssetPath = "/dashboard";

    private const string ResourcePrefix = "Fabric.Node.Gateway.Dashboard.";
    private const string Page = "index.html";

    private static readonly FrozenDictionary<string, string> ContentTypes = new Dictionary<string, string>
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml",
    }.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    /// <summary>The embedded files by name, read once: content, content type and entity tag (a hash of the content).</summary>
    private static readonly Lazy<FrozenDictionary<string, Asset>> Assets = new(Load);

    private sealed record Asset(byte[] Content, string ContentType, string ETag);

    public static void Map(WebApplication app)
    {
        // The page is revalidated on every load (a new node version brings a new page); its files may be kept a few minutes.
        app.MapGet("/", (HttpContext context) => Serve(context, Page, "no-cache"));
        app.MapGet(AssetPath + "/{file}", (string file, HttpContext context) => Serve(context, file, "public, max-age=300"));
    }

    /// <summary>The names of the files the dashboard serves.</summary>
    public static IEnumerable<string> Files => Assets.Value.Keys;

    private static IResult Serve(HttpContext context, string file, string cacheControl)
    {
        if (!Assets.Value.TryGetValue(file, out var asset))
            return Results.Json(new Problem(nameof(ErrorCode.ENOENT), $"the dashboard has no file {file} (it has {string.Join(", ", Assets.Value.Keys.Order())})"),
                HttpGateway.Json, statusCode: 404);
        var headers = context.Response.Headers;
        headers.CacheControl = cacheControl;
        headers.ETag = asset.ETag;
        headers.XContentTypeOptions = "nosniff";
        if (context.Request.Headers.IfNoneMatch.Contains(asset.ETag)) return Results.StatusCode(StatusCodes.Status304NotModified);
        return Results.Bytes(asset.Content, asset.ContentType);
    }

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(Dashboard).Assembly;
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            var name = resource[ResourcePrefix.Length..];
            if (!ContentTypes.TryGetValue(Path.GetExtension(name), out var type)) continue;
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var content = copy.ToArray();
            assets[name] = new Asset(content, type, $"\"{Convert.ToHexStringLower(SHA256.HashData(content))[..16]}\"");
        }
        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
