using Fabric.Core;

namespace Fabric.Devices.Internal.Fences;

/// <summary>
/// Fences that contexts own on a device's timeline (sync_file / drm_syncobj): who may signal each, and the timelines
/// whose points signal in order. Pure: it says which fences to signal, and with what, the device does it.
/// </summary>
internal sealed class ClientFences
{
    private sealed class Point(long seq)
    {
        public long Seq { get; } = seq;
        public bool Requested { get; set; }
        public FabricError? Error { get; set; }
    }

    private readonly Dictionary<long, (ContextId Owner, long Timeline, long Point)> _owned = [];
    private readonly Dictionary<(ContextId, long), SortedDictionary<long, Point>> _timelines = [];
    private readonly Dictionary<(ContextId, long), long> _lastPoint = [];
    private readonly HashSet<long> _signalled = []; // kept while the owner lives, so a second signal is told apart

    public int Count => _owned.Count - _signalled.Count;

    /// <summary>A new point must come after every point the timeline has had.</summary>
    public FabricError? CheckNewPoint(ContextId owner, long timeline, long point) =>
        timeline != 0 && _lastPoint.TryGetValue((owner, timeline), out var last) && point <= last
            ? FabricError.Invalid($"timeline {timeline} of {owner} is at point {last}: a new point must be above it, not {point}")
            : null;

    public void Add(long seq, ContextId owner, long timeline, long point)
    {
        _owned[seq] = (owner, timeline, point);
        if (timeline == 0) return;
        _lastPoint[(owner, timeline)] = point;
        if (!_timelines.TryGetValue((owner, timeline), out var points)) _timelines[(owner, timeline)] = points = [];
        points[point] = new Point(seq);
    }

    /// <summary>Only the owner may signal, and only a fence it has not signalled yet.</summary>
    public FabricError? CheckSignal(ContextId requester, FenceId fence)
    {
        if (!_owned.TryGetValue(fence.Seq, out var owned))
            return new FabricError(ErrorCode.EPERM, $"{requester} may not signal {fence}: it is not a fence a context created, or it signalled already");
        if (owned.Owner != requester) return new FabricError(ErrorCode.EPERM, $"{requester} may not signal {fence}: it belongs to {owned.Owner}");
        if (_signalled.Contains(fence.Seq) || (owned.Timeline != 0 && _timelines[(owned.Owner, owned.Timeline)][owned.Point].Requested))
            return FabricError.Invalid($"{fence} was signalled already: a fence signals once");
        return null;
    }

    /// <summary>The owner signals: the fences to signal now, in order (a timeline point waits for the earlier ones).</summary>
    public IReadOnlyList<(long Seq, FabricError? Error)> Signal(long seq, FabricError? error)
    {
        if (!_owned.TryGetValue(seq, out var owned)) return [];
        if (owned.Timeline == 0) return _signalled.Add(seq) ? [(seq, error)] : [];
        var key = (owned.Owner, owned.Timeline);
        var points = _timelines[key];
        (points[owned.Point].Requested, points[owned.Point].Error) = (true, error);
        var now = new List<(long, FabricError?)>();
        while (points.Count > 0 && points.First() is { Value.Requested: true } first)
        {
            points.Remove(first.Key);
            _signalled.Add(first.Value.Seq);
            now.Add((first.Value.Seq, first.Value.Error));
        }
        if (points.Count == 0) _timelines.Remove(key);
        return now;
    }

    /// <summary>The owner is gone: every fence it still owns, in timeline order, to signal with an error.</summary>
    public IReadOnlyList<long> RemoveOwnedBy(ContextId owner)
    {
        var all = _owned.Where(o => o.Value.Owner == owner).OrderBy(o => (o.Value.Timeline, o.Value.Point)).Select(o => o.Key).ToList();
        var seqs = all.Where(seq => !_signalled.Contains(seq)).ToList();
        foreach (var seq in all)
        {
            _owned.Remove(seq);
            _signalled.Remove(seq);
        }
        foreach (var key in _timelines.Keys.Where(k => k.Item1 == owner).ToList()) _timelines.Remove(key);
        foreach (var key in _lastPoint.Keys.Where(k => k.Item1 == owner).ToList()) _lastPoint.Remove(key);
        return seqs;
    }
}
