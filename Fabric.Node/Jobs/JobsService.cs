using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core.Gateway;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Jobs;
using Fabric.Core.Protocol;

namespace Fabric.Node.Jobs;

/// <summary>
/// The job API of a node, used by the HTTP gateway: validates a spec against the cluster's devices before anything
/// is persisted, gives the job an id, starts its entity and records it in the index.
/// </summary>
public sealed class JobsService(ActorSystem system, IActorRef region, IActorRef deviceManager)
{
    /// <summary>
    /// How long a submission may take, from its arrival at the gateway to its answer; past it, the submission expires
    /// (<see cref="JobEntity.Start.ExpiresAtMs"/>) and can no longer start the job.
    /// </summary>
    public static readonly TimeSpan SubmitTimeout = Fabric.Core.Gateway.Submission.GatewayDeadline;

    /// <summary>Reads answer within this or fail (503): while a lost node's jobs move, a quick retry beats a long wait.</summary>
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Submits a job → its id; an invalid spec → a <see cref="FabricException"/> naming the task, and nothing persisted.
    /// A caller may choose the id (<paramref name="jobId"/>): submitting the same spec under it again is harmless (a retry
    /// after a lost answer starts nothing twice); another spec under a taken id is EEXIST.
    /// </summary>
    public async Task<string> SubmitAsync(JobSpec spec, CancellationToken cancel, string? jobId = null)
    {
        var expires = DateTimeOffset.UtcNow + SubmitTimeout;
        if (jobId is not null && !IsValidId(jobId))
            throw new FabricException(FabricError.Invalid($"'{jobId}' is not a job id: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"));
        if (jobId == ReservedId)
            throw new FabricException(FabricError.Invalid($"job id '{jobId}' is reserved: the job index keeps its journal as job-{jobId}"));
        var devices = (await deviceManager.Ask<DeviceRequests.DeviceList>(new DeviceRequests.ListDevices(), SubmitTimeout, cancel)).Devices;
        if (devices.IsDefaultOrEmpty) throw new FabricException(new FabricError(ErrorCode.ENODEV, "the cluster has no devices to run a job on"));
        if (JobValidator.Validate(spec, devices.Max(d => d.MemoryTotal)) is { } error) throw new FabricException(error);
        if (Unplaceable(spec, devices) is { } unplaceable) throw new FabricException(unplaceable);
        if (TooBig(spec) is { } tooBig) throw new FabricException(tooBig);
        jobId ??= $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
        // The listing first: reads of a job the index does not list are answered without waking an entity (nothing is
        // written for a typo), so a job must be listed before it can start. A listing whose Start then fails or expires
        // stays a job that never started (ENOENT; not in `fabric jobs`); the caller's retry under the same id starts it.
        await Ask<JobIndex.ContextAck>(new JobIndex.Add(new JobIndex.JobListing(jobId, spec.Name, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())), cancel, SubmitTimeout);
        var left = expires - DateTimeOffset.UtcNow;
        if (left <= TimeSpan.Zero) throw new AskTimeoutException($"the submission of job {jobId} took its {SubmitTimeout.TotalSeconds:0} s before it reached the job");
        await Ask<JobEntity.Accepted>(new JobEntity.Start(jobId, spec, expires.ToUnixTimeMilliseconds()), cancel, left);
        _known.TryAdd(jobId, 0);
        return jobId;
    }

    /// <summary>
    /// Room left in a message for what travels with a job's spec: the Start envelope, and in the answers to Get the state
    /// of every task.
    /// </summary>
    public const long MessageHeadroom = 256 << 10;

    /// <summary>
    /// The largest spec a job may have, in bytes as serialized: Akka.Remote's frame size less <see cref="MessageHeadroom"/>.
    /// A job's spec crosses nodes in one message (the Start to its entity, the answers to Get); a larger one would be
    /// dropped by the transport, and the submission would only time out.
    /// </summary>
    public long SpecLimit => FrameSize - MessageHeadroom;

    private long FrameSize => system.Settings.Config.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size", 128_000) ?? 128_000;

    /// <summary>A spec over <see cref="SpecLimit"/> → E2BIG naming its largest inline input and the limit.</summary>
    private FabricError? TooBig(JobSpec spec)
    {
        var size = system.Serialization.FindSerializerFor(spec).ToBinary(spec).LongLength;
        if (size <= SpecLimit) return null;
        var inline = spec.Buffers.Where(b => b.Init is { Kind: InitKind.Inline }).OrderByDescending(b => b.Init!.Data?.Length ?? 0).ToList();
        var limit = $"the limit is {SpecLimit:N0} bytes (akka.remote.dot-netty.tcp.maximum-frame-size, {FrameSize:N0} bytes, less {MessageHeadroom:N0} " +
                    "for what travels with the spec)";
        return new FabricError(ErrorCode.E2BIG, inline.Count == 0
            ? $"job '{spec.Name}': its spec is {size:N0} bytes as a message, and a job's spec crosses nodes in one message; {limit}"
            : $"job '{spec.Name}': the inline data of input '{inline[0].Name}' is {inline[0].Init!.Data?.Length ?? 0:N0} bytes " +
              $"({inline.Sum(b => (long)(b.Init!.Data?.Length ?? 0)):N0} in {inline.Count} inline input(s); the spec {size:N0} bytes as a message), and a job's spec " +
              $"crosses nodes in one message; {limit}. Give large inputs as randomFloats or ramp");
    }

    /// <summary>A job's journal is <c>job-&lt;id&gt;</c>; this id would share the job index's.</summary>
    internal const string ReservedId = "index";

    internal static bool IsValidId(string id) =>
        id.Length is > 0 and <= 64 && char.IsAsciiLetterOrDigit(id[0]) && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>A task whose node or device kind the cluster does not have → EINVAL naming it.</summary>
    private static FabricError? Unplaceable(JobSpec spec, ImmutableArray<DeviceInfo> devices)
    {
        foreach (var task in spec.Tasks)
        {
            if (task.Needs.Node is { } node && devices.All(d => d.Id.Node != node))
                return FabricError.Invalid($"task {task.Name} needs node '{node}', which is not in the cluster (nodes: {string.Join(", ", devices.Select(d => d.Id.Node).Distinct())})");
            if (task.Needs.DeviceKind is { } kind && devices.All(d => d.Kind != kind))
                return FabricError.Invalid($"task {task.Name} needs a device of kind '{kind}', which the cluster does not have (kinds: {string.Join(", ", devices.Select(d => d.Kind).Distinct())})");
        }
        return null;
    }

    public async Task<JobState> GetAsync(string jobId, CancellationToken cancel)
    {
        await KnownAsync(jobId, cancel);
        return await Read<JobState>(new JobEntity.Get(jobId), cancel);
    }

    /// <summary>A job's status and counts without its tasks' records (<see cref="JobBrief"/>); status Unknown for a job never submitted.</summary>
    public async Task<JobBrief> GetBriefAsync(string jobId, CancellationToken cancel)
    {
        await KnownAsync(jobId, cancel);
        return await Read<JobBrief>(new JobEntity.Get(jobId, Brief: true), cancel);
    }

    /// <summary>Cancels a running job → its state, Cancelled; an ended job → EINVAL, an unknown one → ENOENT (<see cref="JobEntity.Cancel"/>).</summary>
    public async Task<JobState> CancelAsync(string jobId, CancellationToken cancel)
    {
        await KnownAsync(jobId, cancel);
        return await Ask<JobState>(new JobEntity.Cancel(jobId), cancel, SubmitTimeout);
    }

    /// <summary>Ids the job index has listed (jobs are never removed from it), so that a read asks the index once per job.</summary>
    private readonly ConcurrentDictionary<string, byte> _known = new(StringComparer.Ordinal);

    /// <summary>
    /// A job the index does not list → ENOENT, answered without asking its entity: an entity woken for a job that does
    /// not exist would be written to the shard's remembered entities (and out again) for nothing. An index that does not
    /// answer within <see cref="IndexLookupTimeout"/> (its node was lost, and it moves) is passed by: the job's entity
    /// answers instead (a job with no history as Unknown), so that reads of running jobs go on meanwhile.
    /// </summary>
    private async Task KnownAsync(string jobId, CancellationToken cancel)
    {
        if (_known.ContainsKey(jobId)) return;
        bool known;
        try { known = (await Ask<JobIndex.Found>(new JobIndex.Lookup(jobId), cancel, IndexLookupTimeout)).Known; }
        catch (AskTimeoutException) { return; }
        if (!known) throw new FabricException(new FabricError(ErrorCode.ENOENT, $"there is no job {jobId}"));
        _known.TryAdd(jobId, 0);
    }

    /// <summary>How long a read waits for the job index before it asks the job's entity directly.</summary>
    internal static readonly TimeSpan IndexLookupTimeout = TimeSpan.FromSeconds(1);

    /// <summary>An output of a completed job, fetched in chunks that fit a message.</summary>
    public async Task<byte[]> GetOutputAsync(string jobId, string name, CancellationToken cancel)
    {
        const int chunk = 1 << 20;
        await KnownAsync(jobId, cancel);
        var first = await Read<JobEntity.OutputChunk>(new JobEntity.GetOutput(jobId, name, 0, chunk), cancel);
        var data = new byte[first.Total];
        first.Data.CopyTo(data, 0);
        for (long at = first.Data.Length; at < first.Total;)
        {
            var part = await Read<JobEntity.OutputChunk>(new JobEntity.GetOutput(jobId, name, at, chunk), cancel);
            if (part.Data.Length == 0) throw new FabricException(new FabricError(ErrorCode.EIO, $"output {name} of job {jobId} ended early at {at} bytes"));
            part.Data.CopyTo(data, at);
            at += part.Data.Length;
        }
        return data;
    }

    /// <summary>Every job the index lists, each as its brief state (no task records): what a poll of the list needs.</summary>
    public async Task<ImmutableArray<JobBrief>> ListBriefAsync(CancellationToken cancel)
    {
        var briefs = await Task.WhenAll((await ListedAsync(cancel)).Select(id => Read<JobBrief>(new JobEntity.Get(id, Brief: true), cancel)));
        return [.. briefs.Where(b => b.Status != JobStatus.Unknown)];
    }

    public async Task<ImmutableArray<JobState>> ListAsync(CancellationToken cancel)
    {
        var states = await Task.WhenAll((await ListedAsync(cancel)).Select(id => Read<JobState>(new JobEntity.Get(id), cancel)));
        return [.. states.Where(s => s.Status != JobStatus.Unknown)];
    }

    /// <summary>The ids the index lists, each then known; a listed job that never started (its Start failed or expired) reads as Unknown.</summary>
    private async Task<IEnumerable<string>> ListedAsync(CancellationToken cancel)
    {
        var listing = await Ask<JobIndex.Listing>(new JobIndex.List(), cancel);
        foreach (var job in listing.Jobs) _known.TryAdd(job.JobId, 0);
        return listing.Jobs.Select(j => j.JobId);
    }

    private async Task<T> Ask<T>(object message, CancellationToken cancel, TimeSpan? timeout = null) =>
        Expect<T>(await region.Ask<object>(message, timeout ?? ReadTimeout, cancel));

    private static T Expect<T>(object reply) => reply switch
    {
        T ok => ok,
        FabricError error => throw new FabricException(error),
        _ => throw new FabricException(new FabricError(ErrorCode.EIO, $"the job region answered {reply.GetType().Name}")),
    };

    /// <summary>How long a read waits for this node's region before it asks every member's region too.</summary>
    internal static readonly TimeSpan ReadFallbackAfter = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A question to a job's entity (a read: it changes nothing, so asking twice is harmless). This node's region is
    /// asked first. A region that has never routed to the job asks the shard coordinator where it lives, and while the
    /// coordinator's node is lost that waits until the coordinator has moved (~6 s). So after
    /// <see cref="ReadFallbackAfter"/> the same question goes to the region of every other member this node can reach;
    /// the one whose node holds the job answers from its own shard, and the first answer is the reply.
    /// </summary>
    private async Task<T> Read<T>(object message, CancellationToken cancel)
    {
        var local = Ask<T>(message, cancel);
        if (await Task.WhenAny(local, Task.Delay(ReadFallbackAfter, cancel)) == local) return await local;
        var cluster = Akka.Cluster.Cluster.Get(system);
        var state = cluster.State;
        var asks = state.Members
            .Where(m => m.Status == Akka.Cluster.MemberStatus.Up && m.Address != cluster.SelfAddress && !state.Unreachable.Contains(m))
            .Select(async m => Expect<T>(await system.ActorSelection(new RootActorPath(m.Address) / "system" / "sharding" / JobEntity.TypeName)
                .Ask<object>(message, ReadTimeout - ReadFallbackAfter, cancel)))
            .Prepend(local).ToList();
        while (true)
        {
            var done = await Task.WhenAny(asks);
            asks.Remove(done);
            // An answer (even a refusal: ENOENT, EINVAL) from the job's entity is the reply; a region that did not answer is passed by.
            if (done.IsCompletedSuccessfully || done.Exception?.InnerException is FabricException || asks.Count == 0) return await done;
        }
    }

    internal ActorSystem System => system;
}
