using System.Collections.Immutable;
using Akka.Actor;
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
    private static readonly TimeSpan SubmitTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Reads answer within this or fail (503): while a lost node's jobs move, a quick retry beats a long wait.</summary>
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Submits a job → its id; an invalid spec → a <see cref="FabricException"/> naming the task, and nothing persisted.
    /// A caller may choose the id (<paramref name="jobId"/>): submitting the same spec under it again is harmless (a retry
    /// after a lost answer starts nothing twice); another spec under a taken id is EEXIST.
    /// </summary>
    public async Task<string> SubmitAsync(JobSpec spec, CancellationToken cancel, string? jobId = null)
    {
        if (jobId is not null && !IsValidId(jobId))
            throw new FabricException(FabricError.Invalid($"'{jobId}' is not a job id: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"));
        if (jobId == ReservedId)
            throw new FabricException(FabricError.Invalid($"job id '{jobId}' is reserved: the job index keeps its journal as job-{jobId}"));
        var devices = (await deviceManager.Ask<DeviceRequests.DeviceList>(new DeviceRequests.ListDevices(), SubmitTimeout, cancel)).Devices;
        if (devices.IsDefaultOrEmpty) throw new FabricException(new FabricError(ErrorCode.ENODEV, "the cluster has no devices to run a job on"));
        if (JobValidator.Validate(spec, devices.Max(d => d.MemoryTotal)) is { } error) throw new FabricException(error);
        if (Unplaceable(spec, devices) is { } unplaceable) throw new FabricException(unplaceable);
        jobId ??= $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
        await Ask<JobIndex.ContextAck>(new JobIndex.Add(new JobIndex.JobListing(jobId, spec.Name, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())), cancel, SubmitTimeout);
        await Ask<JobEntity.Accepted>(new JobEntity.Start(jobId, spec), cancel, SubmitTimeout);
        return jobId;
    }

    /// <summary>A job's journal is <c>job-&lt;id&gt;</c>; this id would share the job index's.</summary>
    private const string ReservedId = "index";

    private static bool IsValidId(string id) =>
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

    public Task<JobState> GetAsync(string jobId, CancellationToken cancel) => Ask<JobState>(new JobEntity.Get(jobId), cancel);

    /// <summary>An output of a completed job, fetched in chunks that fit a message.</summary>
    public async Task<byte[]> GetOutputAsync(string jobId, string name, CancellationToken cancel)
    {
        const int chunk = 1 << 20;
        var first = await Ask<JobEntity.OutputChunk>(new JobEntity.GetOutput(jobId, name, 0, chunk), cancel);
        var data = new byte[first.Total];
        first.Data.CopyTo(data, 0);
        for (long at = first.Data.Length; at < first.Total;)
        {
            var part = await Ask<JobEntity.OutputChunk>(new JobEntity.GetOutput(jobId, name, at, chunk), cancel);
            if (part.Data.Length == 0) throw new FabricException(new FabricError(ErrorCode.EIO, $"output {name} of job {jobId} ended early at {at} bytes"));
            part.Data.CopyTo(data, at);
            at += part.Data.Length;
        }
        return data;
    }

    public async Task<ImmutableArray<JobState>> ListAsync(CancellationToken cancel)
    {
        var listing = await Ask<JobIndex.Listing>(new JobIndex.List(), cancel);
        var states = await Task.WhenAll(listing.Jobs.Select(j => GetAsync(j.JobId, cancel)));
        return [.. states];
    }

    private async Task<T> Ask<T>(object message, CancellationToken cancel, TimeSpan? timeout = null)
    {
        var reply = await region.Ask<object>(message, timeout ?? ReadTimeout, cancel);
        return reply switch
        {
            T ok => ok,
            FabricError error => throw new FabricException(error),
            _ => throw new FabricException(new FabricError(ErrorCode.EIO, $"the job region answered {reply.GetType().Name}")),
        };
    }

    internal ActorSystem System => system;
}
