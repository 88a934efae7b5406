using System.Net.Http.Json;
using Fabric.Core.Protocol;
using Fabric.Node.Cluster;
using Fabric.Node.Gateway;

namespace Fabric.Node.Cli;

/// <summary>Reads a node's HTTP gateway for the CLI; failures become one clear sentence.</summary>
public sealed class GatewayClient(string baseUrl) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(10) };

    public const string DefaultUrl = "http://127.0.0.1:5080";

    public Task<DeviceInfo[]> DevicesAsync(CancellationToken cancel) => GetAsync<DeviceInfo[]>("devices", cancel);
    public Task<NodeRegistry.NodeList> NodesAsync(CancellationToken cancel) => GetAsync<NodeRegistry.NodeList>("nodes", cancel);
    public Task<HttpGateway.Health> HealthAsync(CancellationToken cancel) => GetAsync<HttpGateway.Health>("health", cancel);

    public async Task<T> GetAsync<T>(string path, CancellationToken cancel)
    {
        try
        {
            using var response = await _http.GetAsync(path, cancel);
            var body = await response.Content.ReadFromJsonAsync<T>(HttpGateway.Json, cancel);
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

public sealed class GatewayException(string message) : Exception(message);
