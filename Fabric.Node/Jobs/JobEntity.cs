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

    /// <summary>Starts the job once (again: a no-op) → <see cref="Accepted"/> once <see cref="JobEvents.Submitted"/> is persisted.</summary>
    [MessagePackObject]
    [Manifest("JobEntity.Start")]
    public sealed record Start([property: Key(0)] string JobId, [property: Key(1)] JobSpec Spec) : IJobMessage;

    [MessagePackObject]
    [Manifest("JobEntity.Accepted")]
    public sealed record Accepted([property: Key(0)] string JobId) : IFabricMessage;

    /// <summary>→ the job's <see cref="JobState"/> (status Unknown for a job never submitted).</summary>
    [MessagePackObject]
    [Manifest("JobEntity.Get")]
    public sealed record Get([property: Key(0)] string JobId) : IJobMessage;

    /// <summary>Reads part of an output of a completed job → <see cref="OutputChunk"/>, or ENOENT naming what is missing.</summary>
    [MessagePackObject]
    [Manifest("JobEntity.GetOutput")]
    public sealed record GetOutput([property: Key(0)] string JobId, [property: Key(1)] string Name, [property: Key(2)] long Offset, [property: Key(3)] int Length) : IJobMessage;

    [MessagePackObject]
    [Manifest("JobEntity.OutputChunk")]
    public sealed record OutputChunk([property: Key(0)] byte[] Data, [property: Key(1)] long Total) : IFabricMessage;

    /// <summary>Routes <see cref="IJobMessage"/>s to their entity by job id.</summary>
    public sealed class MessageExtractor() : HashCodeMessageExtractor(60)
    {
        public override string? EntityId(object message) => (message as IJobMessage)?.JobId;
    }

    public static Props Props(string jobId, IActorRef deviceManager, JobRunOptions options) =>
        Akka.Actor.Props.Create(() => new JobEntityActor(jobId, deviceManager, options));
}
