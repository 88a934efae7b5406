using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Node.Cluster;
using Fabric.Node.Jobs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Fabric.Node.Gateway;

/// <summary>
/// The node's HTTP gateway (loopback by default): <c>GET /health</c>, <c>GET /nodes</c>, <c>GET /devices</c> (answered
/// from the cluster-wide registry without opening any device), <c>GET /devices/local</c> (this node's devices, asked
/// now) and the job API; all JSON. The CLI reads these.
/// </summary>
public static class HttpGateway
{
    /// <summary>The gateway's JSON (<see cref="GatewayJson.Options"/>).</summary>
    public static readonly JsonSerializerOptions Json = GatewayJson.Options;

    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    public static void Map(WebApplication app, NodeOptions options)
    {
        // Every refusal is a problem document (RFC 9457: application/problem+json, with the Fabric code as its title and
        // the sentence as its detail); a node that cannot answer in time (its registry or devices busy, the node
        // stopping) is a 503 with a sentence, never an empty 500.
        app.Use(async (context, next) =>
        {
            context.Response.OnStarting(() =>
            {
                if (context.Response.StatusCode >= 400 && context.Response.ContentType?.StartsWith("application/json", StringComparison.Ordinal) == true)
                    context.Response.ContentType = "application/problem+json; charset=utf-8";
                return Task.CompletedTask;
            });
            try { await next(context); }
            catch (AskTimeoutException) when (!context.Response.HasStarted)
            {
                context.Response.Clear();
                context.Response.StatusCode = 503;
                await context.Response.WriteAsJsonAsync(new Problem(nameof(ErrorCode.ETIMEDOUT),
                    $"node {options.Name} did not answer {context.Request.Path} within {AskTimeout.TotalSeconds:0} s (it is busy or stopping); " +
                    "try again, or ask another node"), Json);
            }
        });
        app.Use(new GatewayAuth(options.ApiToken).InvokeAsync);
        app.MapGet("/health", async (ActorRegistry actors, JobsReadiness jobs) =>
        {
            var cluster = Akka.Cluster.Cluster.Get(app.Services.GetRequiredService<ActorSystem>());
            var nodes = await actors.Get<NodeRegistryKey>().Ask<NodeList>(new NodeRegistry.GetNodes(), AskTimeout);
            var status = cluster.SelfMember.Status;
            var body = new Health(options.Name, cluster.SelfAddress.ToString(), status.ToString(),
                nodes.Nodes.Count(n => n.Status == nameof(MemberStatus.Up) && n.Reachable), nodes.Nodes.Length, jobs.State);
            return Results.Json(body, Json, statusCode: status == MemberStatus.Up ? 200 : 503);
        });
        app.MapGet("/nodes", async (ActorRegistry actors) =>
            Results.Json(await actors.Get<NodeRegistryKey>().Ask<NodeList>(new NodeRegistry.GetNodes(), AskTimeout), Json));
        app.MapGet("/devices", async (ActorRegistry actors) =>
            Results.Json((await actors.Get<NodeRegistryKey>().Ask<DeviceRequests.DeviceList>(new DeviceRequests.ListDevices(), AskTimeout)).Devices, Json));
        // This node's own devices, asked now (not the registry's copy): exact counters, for checks that need them.
        app.MapGet("/devices/local", async (ActorRegistry actors) =>
            Results.Json((await actors.Get<DeviceManagerKey>().Ask<DeviceRequests.DeviceList>(new DeviceManager.ListLocalDevices(), AskTimeout)).Devices, Json));
        MapJobs(app);
        // The devices are asked once per scrape, just before the exporter reads the gauges (NodeMetrics).
        app.MapPrometheusScrapingEndpoint("/metrics", meterProvider: null, configureBranchedPipeline: branch => branch.Use(async (context, next) =>
        {
            await context.RequestServices.GetRequiredService<NodeMetrics>().RefreshAsync(context.RequestAborted);
            await next(context);
        }), optionsName: null);
        Dashboard.Map(app);
        // Once it listens, the registry publishes where: clients that follow a job learn every gateway from /nodes.
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            if (AdvertisedUrl(app.Urls, options.AdvertisedHost) is { } url)
                app.Services.GetRequiredService<ActorRegistry>().Get<NodeRegistryKey>().Tell(new NodeRegistry.UseGateway(url));
        });
    }

    /// <summary>
    /// The URL others reach the gateway at: the first address it listens on, a wildcard host (0.0.0.0, [::], +, *)
    /// replaced by the node's advertised host. Null when it listens nowhere.
    /// </summary>
    public static string? AdvertisedUrl(IEnumerable<string> listening, string advertisedHost)
    {
        foreach (var address in listening)
        {
            var wildcard = address.Replace("://+:", "://0.0.0.0:").Replace("://*:", "://0.0.0.0:");
            if (!Uri.TryCreate(wildcard, UriKind.Absolute, out var uri)) continue;
            var host = uri.Host is "0.0.0.0" or "[::]" or "::" ? advertisedHost : uri.Host;
            if (host.Contains(':') && !host.StartsWith('[')) host = $"[{host}]";
            return $"{uri.Scheme}://{host}:{uri.Port}";
        }
        return null;
    }

    /// <summary>
    /// <c>POST /jobs[?id=chosen-id]</c> (a job spec as JSON → 202 with the job id, or 400 with the code and sentence; 413 for a
    /// body over twice <see cref="JobsService.SpecLimit"/>),
    /// <c>GET /jobs</c>, <c>GET /jobs/{id}</c>, <c>DELETE /jobs/{id}</c> (cancels it), <c>GET /jobs/{id}/spec</c>,
    /// <c>GET /jobs/{id}/events</c> (its history), <c>GET /jobs/{id}/timeline</c> (its attempts as a Chrome trace-event
    /// document), <c>GET /jobs/{id}/outputs/{name}</c> (the bytes).
    /// </summary>
    private static void MapJobs(WebApplication app)
    {
        // One for the gateway's life: it remembers the jobs the index has listed, so that reads ask the index once per job.
        JobsService? jobs = null;
        JobsService Jobs(ActorRegistry actors) =>
            jobs ??= new(app.Services.GetRequiredService<ActorSystem>(), actors.Get<JobRegionKey>(), actors.Get<DeviceManagerKey>());

        app.MapPost("/jobs", async (HttpRequest request, ActorRegistry actors, CancellationToken cancel) =>
        {
            // Parsed from its bytes: a wide job's spec is megabytes, and as text twice that again. The body is read up to
            // twice the largest spec a job may have (its JSON: inline data in base64, names and layout): a larger one could
            // only be refused with E2BIG after the gateway had held all of it.
            var limit = Jobs(actors).SpecLimit * 2;
            if (request.ContentLength > limit) return BodyTooLarge(request.ContentLength.Value, limit);
            if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } kestrel)
                kestrel.MaxRequestBodySize = null; // the loop below holds the limit
            using var body = new MemoryStream();
            var part = new byte[64 * 1024];
            for (int read; (read = await request.Body.ReadAsync(part, cancel)) > 0;)
            {
                if (body.Length + read > limit) return BodyTooLarge(body.Length + read, limit);
                body.Write(part, 0, read);
            }
            return await Answer(async () =>
            {
                try
                {
                    var jobId = await Jobs(actors).SubmitAsync(JobJson.Parse(body.GetBuffer().AsMemory(0, (int)body.Length)), cancel, request.Query["id"].FirstOrDefault());
                    return Results.Json(new JobAccepted(jobId), Json, statusCode: 202);
                }
                catch (FabricException e) when (e.Code != ErrorCode.ETIMEDOUT)
                {
                    // A spec the cluster cannot take (400; 413 when too big for a message), or an id another job holds (409): nothing was started.
                    return Results.Json(new Problem(e.Code.ToString(), e.Error.Message), Json,
                        statusCode: e.Code switch { ErrorCode.EEXIST => 409, ErrorCode.E2BIG => 413, _ => 400 });
                }
            });
        });
        // ?tasks=false: each job without its tasks' records (taskDetails empty), as GET /jobs/{id}?tasks=false — for lists polled often.
        app.MapGet("/jobs", (HttpRequest request, ActorRegistry actors, CancellationToken cancel) => Answer(async () =>
        {
            if (WithTasks(request) is not { } withTasks) return BadTasks(request);
            return !withTasks
                ? Results.Json((await Jobs(actors).ListBriefAsync(cancel)).Select(JobViews.Of), Json)
                : Results.Json((await Jobs(actors).ListAsync(cancel)).Select(JobViews.Of), Json);
        }));
        // ?tasks=false leaves out each task's record (taskDetails is empty): a watcher's poll of a wide job costs the same as a small one's.
        app.MapGet("/jobs/{id}", (string id, HttpRequest request, ActorRegistry actors, CancellationToken cancel) => Answer(async () =>
        {
            if (WithTasks(request) is not { } withTasks) return BadTasks(request);
            var view = !withTasks ? JobViews.Of(await Jobs(actors).GetBriefAsync(id, cancel)) : JobViews.Of(await Jobs(actors).GetAsync(id, cancel));
            return view.Status == nameof(JobStatus.Unknown)
                ? Results.Json(new Problem(nameof(ErrorCode.ENOENT), $"there is no job {id}"), Json, statusCode: 404)
                : Results.Json(view, Json);
        }));
        // The job's timeline as a Chrome trace-event document (JobTimeline), drawn from the full view with every attempt.
        app.MapGet("/jobs/{id}/timeline", (string id, ActorRegistry actors, CancellationToken cancel) => Answer(async () =>
        {
            var view = JobViews.Of(await Jobs(actors).GetAsync(id, cancel));
            return view.Status == nameof(JobStatus.Unknown)
                ? Results.Json(new Problem(nameof(ErrorCode.ENOENT), $"there is no job {id}"), Json, statusCode: 404)
                : Results.Json(JobTimeline.Of(view, DateTimeOffset.UtcNow), Json);
        }));
        // Cancels a running job: 200 with the job, Cancelled; 404 for an unknown job, 409 for one that has ended.
        app.MapDelete("/jobs/{id}", (string id, ActorRegistry actors, CancellationToken cancel) => Answer(async () =>
        {
            try
            {
                return Results.Json(JobViews.Of(await Jobs(actors).CancelAsync(id, cancel)), Json);
            }
            catch (FabricException e) when (e.Code is ErrorCode.ENOENT or ErrorCode.EINVAL)
            {
                return Results.Json(new Problem(e.Code.ToString(), e.Error.Message), Json, statusCode: e.Code == ErrorCode.ENOENT ? 404 : 409);
            }
        }));
        app.MapGet("/jobs/{id}/spec", (string id, ActorRegistry actors, CancellationToken cancel) => Answer(async () =>
        {
            var state = await Jobs(actors).GetAsync(id, cancel);
            return state.Spec is null
                ? Results.Json(new Problem(nameof(ErrorCode.ENOENT), $"there is no job {id}"), Json, statusCode: 404)
                : Results.Text(JobJson.Write(state.Spec), "application/json");
        }));
        // The job's history from the journal, one entry per event (JobHistory): ?from=SEQ (default 1), ?max=N (default and at
        // most JobHistory.MaxEvents). 404 for a job with no history; 503 when the journal cannot be read in time.
        app.MapGet("/jobs/{id}/events", async (string id, HttpRequest request, JobHistory history, CancellationToken cancel) =>
        {
            var (from, max, error) = EventsRange(request.Query);
            if (error is not null) return Results.Json(new Problem(nameof(ErrorCode.EINVAL), error), Json, statusCode: 400);
            try
            {
                return await history.ReadAsync(id, from, max, cancel) is { } events
                    ? Results.Json(events, Json)
                    : Results.Json(new Problem(nameof(ErrorCode.ENOENT), $"there is no job {id}"), Json, statusCode: 404);
            }
            catch (TimeoutException)
            {
                return Results.Json(new Problem(nameof(ErrorCode.ETIMEDOUT),
                    $"the journal did not answer with the events of job {id} within {JobHistory.ReadTimeout.TotalSeconds:0} s; try again"), Json, statusCode: 503);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The database refused or is gone (its driver's exception, through linq2db and the stream).
                return Results.Json(new Problem(nameof(ErrorCode.EIO), $"the journal could not be read for the events of job {id}: {e.Message}"), Json, statusCode: 503);
            }
        });
        app.MapGet("/jobs/{id}/outputs/{name}", (string id, string name, ActorRegistry actors, CancellationToken cancel) => Answer(async () =>
        {
            try
            {
                return Results.Bytes(await Jobs(actors).GetOutputAsync(id, name, cancel), "application/octet-stream");
            }
            catch (FabricException e) when (e.Code == ErrorCode.ENOENT)
            {
                return Results.Json(new Problem(nameof(ErrorCode.ENOENT), e.Error.Message), Json, statusCode: 404);
            }
        }));
    }

    /// <summary>
    /// Runs a job request; the job region not answering in time (a node holding it was just lost, and its jobs are
    /// moving) is a 503 with ETIMEDOUT and a sentence, not a crash.
    /// </summary>
    private static async Task<IResult> Answer(Func<Task<IResult>> request)
    {
        try { return await request(); }
        catch (AskTimeoutException)
        {
            return Results.Json(new Problem(nameof(ErrorCode.ETIMEDOUT),
                "the job region did not answer in time: a node holding the job may have just been lost, and the job is moving; try again"), Json, statusCode: 503);
        }
        catch (FabricException e)
        {
            // A job nobody submitted is a 404 wherever the refusal was raised; anything else left is the node failing to answer.
            return Results.Json(new Problem(e.Code.ToString(), e.Error.Message), Json, statusCode: e.Code == ErrorCode.ENOENT ? 404 : 503);
        }
    }

    /// <summary>A read's <c>?tasks=</c>: true (the default) or false; null for anything else.</summary>
    private static bool? WithTasks(HttpRequest request) => request.Query["tasks"].FirstOrDefault() switch
    {
        null or "true" => true,
        "false" => false,
        _ => null,
    };

    private static IResult BadTasks(HttpRequest request) =>
        Results.Json(new Problem(nameof(ErrorCode.EINVAL), $"tasks={request.Query["tasks"].FirstOrDefault()}: say tasks=true (the default) or tasks=false"),
            Json, statusCode: 400);

    /// <summary>413 for a POST /jobs body over <paramref name="limit"/> bytes; <paramref name="size"/> is its length, or as much as was read.</summary>
    private static IResult BodyTooLarge(long size, long limit) =>
        Results.Json(new Problem(nameof(ErrorCode.E2BIG),
            $"the job spec sent to POST /jobs is {size:N0} bytes or more, over the gateway's limit of {limit:N0} bytes (twice the largest spec " +
            "a job may have, akka.remote.dot-netty.tcp.maximum-frame-size less room for what travels with it); give large inputs as randomFloats or ramp"),
            Json, statusCode: 413);

    /// <summary><c>from</c> and <c>max</c> of an events request, or the sentence saying what is wrong with them.</summary>
    private static (long From, int Max, string? Error) EventsRange(IQueryCollection query)
    {
        long from = 1;
        var max = JobHistory.MaxEvents;
        if (query["from"].FirstOrDefault() is { } f && (!long.TryParse(f, out from) || from < 1))
            return (0, 0, $"from={f} is not a sequence number (1 is the first event)");
        if (query["max"].FirstOrDefault() is { } m && (!int.TryParse(m, out max) || max < 1 || max > JobHistory.MaxEvents))
            return (0, 0, $"max={m} is not a count from 1 to {JobHistory.MaxEvents}");
        return (from, max, null);
    }
}

/// <summary>The key of the node's registry in Akka.Hosting's actor registry.</summary>
public sealed class NodeRegistryKey;

/// <summary>The key of the node's device manager in Akka.Hosting's actor registry.</summary>
public sealed class DeviceManagerKey;
