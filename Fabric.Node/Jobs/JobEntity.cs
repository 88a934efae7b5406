using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Node.Jobs;

/// <summary>
/// A job: a persistent entity under Cluster.Sharding (type <see cref="TypeName"/>), so it lives on one node at a time
/// and moves — recovering its history from the journal — when that node is lost. It runs the job with a
/// <see cref="JobRun"/> and persists what happens. Messages are addressed by job id.
/// </summary>
public static class JobEntity
{
    public const string TypeName = "job";

    public interface IJobMessage : IFabricMessage
    {
        string JobId { get; }
    }

    /// <summary>
    /// Starts the job once → <see cref="Accepted"/> once <see cref="JobEvents.Submitted"/> is persisted. Again with the same
    /// spec (a retry): Accepted, and nothing starts twice; with another spec: EEXIST. A Start that reaches a job with no
    /// history after <paramref name="ExpiresAtMs"/> (Unix ms; 0: never) starts nothing and is answered ETIMEDOUT: the
    /// gateway gives it the time by which it answers its client, so that once that time has passed (and the clocks'
    /// skew), a submission whose answer was lost is either a known job or one that never started.
    /// </summary>
    [MessagePackObject]
    [Manifest("JobEntity.Start")]
    public sealed record Start([property: Key(0)] string JobId, [property: Key(1)] JobSpec Spec, [property: Key(2)] long ExpiresAtMs = 0) : IJobMessage;

    [MessagePackObject]
    [Manifest("JobEntity.Accepted")]
    public sealed record Accepted([property: Key(0)] string JobId) : IFabricMessage;

    /// <summary>
    /// → the job's <see cref="JobState"/> without output bytes (status Unknown for a job never submitted); with
    /// <paramref name="Brief"/>, its <see cref="JobBrief"/> instead: no spec and no task records, what a watcher polls.
    /// </summary>
    [MessagePackObject]
    [Manifest("JobEntity.Get")]
    public sealed record Get([property: Key(0)] string JobId, [property: Key(1)] bool Brief = false) : IJobMessage;

    /// <summary>Reads part of an output of a completed job → <see cref="OutputChunk"/>, or ENOENT naming what is missing.</summary>
    [MessagePackObject]
    [Manifest("JobEntity.GetOutput")]
    public sealed record GetOutput([property: Key(0)] string JobId, [property: Key(1)] string Name, [property: Key(2)] long Offset, [property: Key(3)] int Length) : IJobMessage;

    /// <summary>
    /// Cancels a running job → its <see cref="JobState"/> (without output bytes) once <see cref="JobEvents.Cancelled"/> is
    /// persisted; its run stops, and closing the run's contexts releases the device memory it held. A cancelled job
    /// asked again answers the same; an ended one EINVAL, an unknown one ENOENT.
    /// </summary>
    [MessagePackObject]
    [Manifest("JobEntity.Cancel")]
    public sealed record Cancel([property: Key(0)] string JobId) : IJobMessage;

    [MessagePackObject]
    [Manifest("JobEntity.OutputChunk")]
    public sealed record OutputChunk([property: Key(0)] byte[] Data, [property: Key(1)] long Total) : IFabricMessage;

    /// <summary>
    /// What the shard sends its entities when it hands them off (a node leaving, a shard moving): the run stops, the
    /// events already on their way are written, and only then does the entity stop, so that the next incarnation
    /// recovers after the last write of this one — never two writers of one job. Local only.
    /// </summary>
    internal sealed record HandOff : INoSerializationVerificationNeeded
    {
        public static readonly HandOff Instance = new();
    }

    /// <summary>Routes <see cref="IJobMessage"/>s to their entity by job id.</summary>
    public sealed class MessageExtractor() : HashCodeMessageExtractor(60)
    {
        public override string? EntityId(object message) => (message as IJobMessage)?.JobId;
    }

    /// <summary>How long an ended job waits for a request before it stops (passivates); asked again later, it recovers.</summary>
    public static readonly TimeSpan DefaultIdleAfterEnd = TimeSpan.FromSeconds(20);

    /// <summary>The props of entity <paramref name="entityId"/> of the job region: the job index (<see cref="JobIndex.EntityId"/>) or a job.</summary>
    public static Props RegionEntity(string entityId, IActorRef deviceManager, JobRunOptions options, TimeSpan? idleAfterEnd = null) =>
        entityId == JobIndex.EntityId ? JobIndex.Props() : Props(entityId, deviceManager, options, idleAfterEnd);

    /// <summary>The entity of job <paramref name="jobId"/>; it runs the job on <paramref name="deviceManager"/>'s cluster.</summary>
    public static Props Props(string jobId, IActorRef deviceManager, JobRunOptions options, TimeSpan? idleAfterEnd = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(jobId);
        ArgumentNullException.ThrowIfNull(deviceManager);
        ArgumentNullException.ThrowIfNull(options);
        var idle = idleAfterEnd ?? DefaultIdleAfterEnd;
        if (idle <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(idleAfterEnd), idle, "an ended job's idle time must be positive");
        return Akka.Actor.Props.Create(() => new JobEntityActor(jobId, deviceManager, options, idle));
    }
}
