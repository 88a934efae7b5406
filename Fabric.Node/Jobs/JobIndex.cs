using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Fabric.Core;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Node.Jobs;

/// <summary>
/// The list of every job ever submitted, kept as one more persistent entity of the job shard region (id
/// <see cref="EntityId"/>), so it survives the loss of any node like the jobs do.
/// </summary>
public static class JobIndex
{
    public const string EntityId = "_index";

    public static Props Props() => Akka.Actor.Props.Create(() => new JobIndexActor());

    /// <summary>Records a submitted job → <see cref="ContextAck"/>.</summary>
    [MessagePackObject]
    [Manifest("JobIndex.Add")]
    public sealed record Add([property: Key(0)] JobListing Job) : JobEntity.IJobMessage
    {
        [IgnoreMember] public string JobId => EntityId;
    }

    [MessagePackObject]
    [Manifest("JobIndex.ContextAck")]
    public sealed record ContextAck : IFabricMessage;

    /// <summary>→ <see cref="Listing"/>, oldest first.</summary>
    [MessagePackObject]
    [Manifest("JobIndex.List")]
    public sealed record List : JobEntity.IJobMessage
    {
        [IgnoreMember] public string JobId => EntityId;
    }

    /// <summary>Whether job <paramref name="Id"/> was ever submitted → <see cref="Found"/>.</summary>
    [MessagePackObject]
    [Manifest("JobIndex.Lookup")]
    public sealed record Lookup([property: Key(0)] string Id) : JobEntity.IJobMessage
    {
        [IgnoreMember] public string JobId => EntityId;
    }

    [MessagePackObject]
    [Manifest("JobIndex.Found")]
    public sealed record Found([property: Key(0)] string Id, [property: Key(1)] bool Known) : IFabricMessage;

    [MessagePackObject]
    [Manifest("JobIndex.Listing")]
    public sealed record Listing([property: Key(0)] ImmutableArray<JobListing> Jobs) : IFabricMessage;

    /// <summary>The persisted event (and listing row): a job's id, name and submission time.</summary>
    [MessagePackObject]
    [Manifest("JobIndex.JobListing")]
    public sealed record JobListing([property: Key(0)] string JobId, [property: Key(1)] string Name, [property: Key(2)] long SubmittedAtMs) : IFabricMessage;

    private sealed class JobIndexActor : ReceivePersistentActor
    {
        private ImmutableArray<JobListing> _jobs = [];
        private readonly HashSet<string> _ids = new(StringComparer.Ordinal);

        public JobIndexActor()
        {
            Recover<JobListing>(Added);
            Command<Add>(m =>
            {
                var replyTo = Sender;
                if (_ids.Contains(m.Job.JobId))
                {
                    replyTo.Tell(new ContextAck());
                    return;
                }
                Persist(m.Job, j =>
                {
                    Added(j);
                    replyTo.Tell(new ContextAck());
                });
            });
            Command<List>(_ => Sender.Tell(new Listing(_jobs)));
            Command<Lookup>(m => Sender.Tell(new Found(m.Id, _ids.Contains(m.Id))));
            // Persist holds every command until its event is written, so the hand-off stops it after its last write.
            Command<JobEntity.HandOff>(_ => Context.Stop(Self));
        }

        private void Added(JobListing job)
        {
            _jobs = _jobs.Add(job);
            _ids.Add(job.JobId);
        }

        public override string PersistenceId => "job-index";
    }
}
