using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Node.Jobs;

/// <summary>
/// What a job entity persists (Akka.Persistence.Sql, with the Fabric serializer): the whole history of a job, from
/// submission to its result. Replaying them in order rebuilds <see cref="JobState"/>.
/// </summary>
public static class JobEvents
{
    public interface IJobEvent : IFabricMessage;

    [MessagePackObject]
    [Manifest("JobEvents.Submitted")]
    public sealed record Submitted([property: Key(0)] string JobId, [property: Key(1)] JobSpec Spec, [property: Key(2)] long AtMs) : IJobEvent;

    /// <summary>A run of the job began on a node: the first, or a new one after the job's node was lost.</summary>
    [MessagePackObject]
    [Manifest("JobEvents.RunStarted")]
    public sealed record RunStarted([property: Key(0)] string Node, [property: Key(1)] long AtMs) : IJobEvent;

    /// <summary>The run stopped on purpose (its entity handed off to another node); the next RunStarted goes on from here.</summary>
    [MessagePackObject]
    [Manifest("JobEvents.RunStopped")]
    public sealed record RunStopped([property: Key(0)] string Reason, [property: Key(1)] long AtMs) : IJobEvent;

    [MessagePackObject]
    [Manifest("JobEvents.TaskPlaced")]
    public sealed record TaskPlaced([property: Key(0)] string Task, [property: Key(1)] DeviceId Device, [property: Key(2)] int Attempt, [property: Key(3)] long AtMs) : IJobEvent;

    /// <summary>The task's first completion: counted once, whatever happens later.</summary>
    [MessagePackObject]
    [Manifest("JobEvents.TaskCompleted")]
    public sealed record TaskCompleted([property: Key(0)] string Task, [property: Key(1)] DeviceId Device, [property: Key(2)] int Attempt,
        [property: Key(3)] double Seconds, [property: Key(4)] long AtMs) : IJobEvent;

    /// <summary>A completed task ran again because its outputs were lost with a node (lineage); not a second completion.</summary>
    [MessagePackObject]
    [Manifest("JobEvents.TaskRecomputed")]
    public sealed record TaskRecomputed([property: Key(0)] string Task, [property: Key(1)] DeviceId Device, [property: Key(2)] int Attempt,
        [property: Key(3)] double Seconds, [property: Key(4)] long AtMs) : IJobEvent;

    [MessagePackObject]
    [Manifest("JobEvents.TaskFailed")]
    public sealed record TaskFailed([property: Key(0)] string Task, [property: Key(1)] DeviceId Device, [property: Key(2)] int Attempt,
        [property: Key(3)] FabricError Error, [property: Key(4)] bool WillRetry, [property: Key(5)] long AtMs) : IJobEvent;

    [MessagePackObject]
    [Manifest("JobEvents.BuffersLost")]
    public sealed record BuffersLost([property: Key(0)] ImmutableArray<string> Buffers, [property: Key(1)] string Reason, [property: Key(2)] long AtMs) : IJobEvent;

    [MessagePackObject]
    [Manifest("JobEvents.Completed")]
    public sealed record Completed([property: Key(0)] ImmutableArray<JobOutput> Outputs, [property: Key(1)] long AtMs) : IJobEvent;

    [MessagePackObject]
    [Manifest("JobEvents.Failed")]
    public sealed record Failed([property: Key(0)] FabricError Error, [property: Key(1)] long AtMs) : IJobEvent;

    /// <summary>The job was cancelled while it ran (<see cref="JobEntity.Cancel"/>): its run stopped, nothing more runs.</summary>
    [MessagePackObject]
    [Manifest("JobEvents.Cancelled")]
    public sealed record Cancelled([property: Key(0)] long AtMs) : IJobEvent;
}

/// <summary>One result buffer of a finished job (in a summary: its size, without the bytes).</summary>
[MessagePackObject]
public sealed record JobOutput([property: Key(0)] string Name, [property: Key(1)] byte[] Data, [property: Key(2)] long Size);
