namespace Fabric.Core.Gateway;

/// <summary>The URL of a node's HTTP gateway, checked.</summary>
public static class GatewayUrl
{
    /// <summary>
    /// An http(s) URL with a host, without a trailing slash; anything else → <see cref="ArgumentException"/> with a
    /// sentence (and, for <c>host:port</c>, the URL meant).
    /// </summary>
    public static string Check(string text)
    {
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0)
            return uri.GetLeftPart(UriPartial.Path).TrimEnd('/');
        var hint = text.Contains("://") ? "" : $"; did you mean http://{text}?";
        throw new ArgumentException($"'{text}' is not an http:// or https:// URL{hint}");
    }
}
