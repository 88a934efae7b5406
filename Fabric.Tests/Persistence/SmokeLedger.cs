using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Fabric.Core;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Tests.Persistence;

/// <summary>
/// A persistent actor written for the persistence smoke tests: it sums the amounts it is told to add, and after a
/// snapshot also keeps the amounts added since. Its events and snapshot are Fabric messages, so they go through the
/// Fabric serializer like the real entities' will.
/// </summary>
public static class SmokeLedger
{
    public static Props Props(string persistenceId) =>
        Akka.Actor.Props.Create(() => new SmokeLedgerActor(persistenceId));

    /// <summary>Persists <see cref="Added"/>; replies with it once stored.</summary>
    public sealed record Add(int Amount);

    /// <summary>Saves a snapshot of the state; replies <see cref="SnapshotSaved"/> once stored.</summary>
    public sealed record TakeSnapshot;

    public sealed record SnapshotSaved(long SequenceNr);

    /// <summary>Replies <see cref="CurrentState"/> (after recovery: commands wait until it is done).</summary>
    public sealed record GetState;

    /// <param name="Sum">The sum of every amount added.</param>
    /// <param name="Count">How many amounts were added.</param>
    /// <param name="SinceSnapshot">The amounts added after the latest snapshot, in order.</param>
    /// <param name="RecoveredSnapshotSeqNr">The sequence number of the snapshot recovery started from (0: none).</param>
    /// <param name="ReplayedEvents">How many events recovery replayed on top of it.</param>
    public sealed record CurrentState(
        long Sum, int Count, ImmutableArray<int> SinceSnapshot, long LastSequenceNr, long RecoveredSnapshotSeqNr, int ReplayedEvents);

    /// <summary>The journaled event.</summary>
    [MessagePackObject]
    [Manifest("SmokeLedger.Added")]
    public sealed record Added([property: Key(0)] int Amount) : IFabricMessage;

    /// <summary>The snapshot: the sum and the count so far.</summary>
    [MessagePackObject]
    [Manifest("SmokeLedger.Snapshot")]
    public sealed record Snapshot([property: Key(0)] long Sum, [property: Key(1)] int Count) : IFabricMessage;
}

internal sealed class SmokeLedgerActor : ReceivePersistentActor
{
    private long _sum;
    private int _count;
    private ImmutableArray<int> _sinceSnapshot = [];
    private long _recoveredSnapshotSeqNr;
    private int _replayedEvents;
    private IActorRef? _awaitingSnapshot;

    public SmokeLedgerActor(string persistenceId)
    {
        PersistenceId = persistenceId;

        Recover<SnapshotOffer>(offer =>
        {
            var snapshot = (SmokeLedger.Snapshot)offer.Snapshot;
            _sum = snapshot.Sum;
            _count = snapshot.Count;
            _sinceSnapshot = [];
            _recoveredSnapshotSeqNr = offer.Metadata.SequenceNr;
        });
        Recover<SmokeLedger.Added>(added =>
        {
            Apply(added);
            _replayedEvents++;
        });

        Command<SmokeLedger.Add>(add =>
        {
            var sender = Sender;
            Persist(new SmokeLedger.Added(add.Amount), added =>
            {
                Apply(added);
                sender.Tell(added);
            });
        });
        Command<SmokeLedger.TakeSnapshot>(_ =>
        {
            _awaitingSnapshot = Sender;
            SaveSnapshot(new SmokeLedger.Snapshot(_sum, _count));
        });
        Command<SaveSnapshotSuccess>(success =>
        {
            _sinceSnapshot = [];
            _awaitingSnapshot?.Tell(new SmokeLedger.SnapshotSaved(success.Metadata.SequenceNr));
            _awaitingSnapshot = null;
        });
        Command<SaveSnapshotFailure>(failure =>
        {
            _awaitingSnapshot?.Tell(new Status.Failure(failure.Cause));
            _awaitingSnapshot = null;
        });
        Command<SmokeLedger.GetState>(_ => Sender.Tell(new SmokeLedger.CurrentState(
            _sum, _count, _sinceSnapshot, LastSequenceNr, _recoveredSnapshotSeqNr, _replayedEvents)));
    }

    public override string PersistenceId { get; }

    private void Apply(SmokeLedger.Added added)
    {
        _sum += added.Amount;
        _count++;
        _sinceSnapshot = _sinceSnapshot.Add(added.Amount);
    }
}
