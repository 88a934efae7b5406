using System.Net;
using System.Security.Cryptography;
using System.Text;
using Fabric.Core.Gateway;
using Fabric.Core;
using Microsoft.AspNetCore.Http;

namespace Fabric.Node.Gateway;

/// <summary>
/// Who may do what through the gateway. With an API token (<c>--api-token</c> / <c>FABRIC_API_TOKEN</c>) every change —
/// any request but GET and HEAD: submitting, cancelling — needs <c>Authorization: Bearer &lt;token&gt;</c>, compared in
/// constant time; reads need it too unless they come from this machine (loopback). Without a token the gateway listens on
/// loopback only (<see cref="Cluster.NodeOptions.Validate"/>), and this machine's users may do everything.
/// </summary>
public sealed class GatewayAuth(string? token)
{
    /// <summary>The environment variable the CLI and the node read the token from.</summary>
    public const string TokenVariable = Fabric.Core.Gateway.GatewayClient.TokenVariable;

    private readonly byte[]? _digest = token is null ? null : SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>Null when <paramref name="context"/> may go on; else the refusal's sentence (the answer is 401 EACCES).</summary>
    public string? Refusal(HttpContext context)
    {
        var request = context.Request;
        var change = !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method);
        var local = context.Connection.RemoteIpAddress is { } from && IPAddress.IsLoopback(from);
        if (_digest is null || (!change && local)) return null;
        var given = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (given.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) &&
            CryptographicOperations.FixedTimeEquals(_digest, SHA256.HashData(Encoding.UTF8.GetBytes(given[scheme.Length..].Trim()))))
            return null;
        var what = $"{request.Method} {request.Path}";
        return given.Length == 0
            ? $"{what} needs this gateway's API token: send the header Authorization: Bearer <token> (the fabric CLI sends ${TokenVariable})"
            : $"{what}: the API token given is not this gateway's";
    }

    /// <summary>The middleware: a refused request is answered 401 with the sentence, and goes no further.</summary>
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (Refusal(context) is not { } refusal)
        {
            await next(context);
            return;
        }
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer";
        await context.Response.WriteAsJsonAsync(new Problem(nameof(ErrorCode.EACCES), refusal), HttpGateway.Json);
    }
}
