using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Fabric.Core.Gateway;

namespace Fabric.Tests.Cli;

/// <summary>
/// A real HTTP server on 127.0.0.1 (a port of the system's choosing) whose routes answer as a test scripts them: the
/// CLI's client side (retries, learning gateways, settling a lost submission) meets the situations a gateway is in
/// while a node is lost, on demand.
/// </summary>
public sealed class ScriptedGateway(WebApplication app, string url) : IAsyncDisposable
{
    public string Url { get; } = url;

    /// <param name="routes">Adds the routes to the app (e.g. <c>app.MapGet("/nodes", ...)</c>).</param>
    public static async Task<ScriptedGateway> StartAsync(Action<WebApplication> routes)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        routes(app);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new ScriptedGateway(app, address.TrimEnd('/'));
    }

    /// <summary>A problem answer as the gateway gives it: the code, a sentence, the status.</summary>
    public static IResult Problem(string code, string message, int status) =>
        Results.Json(new Problem(code, message), Fabric.Node.Gateway.HttpGateway.Json, statusCode: status);

    public async ValueTask DisposeAsync() => await app.DisposeAsync();
}
