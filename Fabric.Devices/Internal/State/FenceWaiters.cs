using System.Collections.Immutable;
using System.Diagnostics;

namespace Fabric.Devices.Internal.State;

/// <summary>
/// The fence waits a device has not answered yet: a wait on one fence, or on any of several (answered at the first
/// signal). Pure: the device asks who to answer when a fence signals, a wait expires or its owner cancels it; a
/// waiter answered, expired or cancelled is gone from every fence at once (so <see cref="Count"/> is exact). Waits
/// that name an owner are counted per owner (<see cref="CountOf"/>), for the per-client limit the device enforces.
/// </summary>
internal sealed class FenceWaiters<TReply> where TReply : notnull
{
    public sealed record Waiter(long Id, TReply ReplyTo, ImmutableArray<long> Fences, bool Any, WaitKey? Key)
    {
        /// <summary>When the wait began (<see cref="Stopwatch.GetTimestamp"/>).</summary>
        public long Since { get; } = Stopwatch.GetTimestamp();
    }

    /// <summary>Who may cancel a wait: the owner that named it and its tag.</summary>
    public readonly record struct WaitKey(object Owner, long Tag);

    private readonly Dictionary<long, List<Waiter>> _byFence = [];
    private readonly Dictionary<long, Waiter> _byId = [];
    private readonly Dictionary<WaitKey, Waiter> _byKey = [];
    private readonly Dictionary<object, int> _byOwner = [];
    private long _next;

    public int Count => _byId.Count;

    /// <summary>The waiters <paramref name="owner"/> has now.</summary>
    public int CountOf(object owner) => _byOwner.GetValueOrDefault(owner);

    /// <summary>Whether a wait with <paramref name="key"/> adds a waiter for its owner (false: it replaces the one with that key).</summary>
    public bool Adds(WaitKey key) => !_byKey.ContainsKey(key);

    public Waiter Add(TReply replyTo, ImmutableArray<long> fences, bool any, WaitKey? key)
    {
        var waiter = new Waiter(++_next, replyTo, fences, any, key);
        _byId[waiter.Id] = waiter;
        if (key is { } k)
        {
            if (_byKey.TryGetValue(k, out var replaced)) Remove(replaced);
            _byKey[k] = waiter;
            _byOwner[k.Owner] = CountOf(k.Owner) + 1;
        }
        foreach (var seq in fences)
        {
            if (!_byFence.TryGetValue(seq, out var list)) _byFence[seq] = list = [];
            list.Add(waiter);
        }
        return waiter;
    }

    /// <summary>A fence signalled: every waiter on it is removed and returned, to be answered now.</summary>
    public IReadOnlyList<Waiter> Signalled(long seq)
    {
        if (!_byFence.TryGetValue(seq, out var list)) return [];
        var answered = list.ToList();
        foreach (var waiter in answered) Remove(waiter);
        return answered;
    }

    /// <summary>The waiter's timeout passed: removed and returned (null when it was answered already).</summary>
    public Waiter? Expire(long id) => _byId.TryGetValue(id, out var waiter) ? Remove(waiter) : null;

    /// <summary>The owner gave up on the wait: removed and returned (null when unknown or already answered).</summary>
    public Waiter? Cancel(WaitKey key) => _byKey.TryGetValue(key, out var waiter) ? Remove(waiter) : null;

    /// <summary>Removes every waiter (the device stops or resets) and returns them.</summary>
    public IReadOnlyList<Waiter> RemoveAll()
    {
        var all = _byId.Values.ToList();
        _byFence.Clear();
        _byId.Clear();
        _byKey.Clear();
        _byOwner.Clear();
        return all;
    }

    private Waiter Remove(Waiter waiter)
    {
        _byId.Remove(waiter.Id);
        if (waiter.Key is { } key && _byKey.TryGetValue(key, out var keyed) && keyed.Id == waiter.Id)
        {
            _byKey.Remove(key);
            if (CountOf(key.Owner) > 1) _byOwner[key.Owner]--;
            else _byOwner.Remove(key.Owner);
        }
        foreach (var seq in waiter.Fences)
            if (_byFence.TryGetValue(seq, out var list) && list.Remove(waiter) && list.Count == 0) _byFence.Remove(seq);
        return waiter;
    }
}
