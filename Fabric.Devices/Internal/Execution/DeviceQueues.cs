using System.Collections.Immutable;
using System.Diagnostics;
using Fabric.Core;

namespace Fabric.Devices.Internal.Execution;

/// <summary>
/// A device's hardware queues: what waits on each, what runs, how long the device has been busy, and how many
/// submissions of each context are still queued or running. No Akka: the device actor decides, this keeps count.
/// </summary>
internal sealed class DeviceQueues
{
    /// <summary>A queued submission with the fences it was given.</summary>
    public sealed record Pending(PreparedSubmission Submission, FenceId Fence, ImmutableArray<FenceId> OutFences);

    /// <summary>A submission running on the thread pool; the device may decide to stop it (<see cref="AbortReason"/>).</summary>
    public sealed class Running(Pending pending)
    {
        public Pending Pending { get; } = pending;
        public CancellationTokenSource Cancel { get; } = new();
        public Stopwatch Elapsed { get; } = Stopwatch.StartNew();
        public FabricError? AbortReason { get; private set; }

        /// <summary>The device's decision to stop it; the first decision stays.</summary>
        public void Abort(FabricError reason)
        {
            AbortReason ??= reason;
            Cancel.Cancel();
        }
    }

    private readonly Queue<Pending>[] _waiting;
    private readonly Running?[] _current;
    private readonly Dictionary<long, Running> _running = [];
    private readonly Dictionary<ContextId, int> _inFlight = [];
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private TimeSpan _busy;

    public DeviceQueues(int queues)
    {
        _waiting = [.. Enumerable.Range(0, queues).Select(_ => new Queue<Pending>())];
        _current = new Running?[queues];
    }

    public int Count => _waiting.Length;
    public int Depth => _waiting.Sum(q => q.Count) + _current.Count(r => r is not null);
    public int RunningCount => _running.Count;
    public IEnumerable<Running> AllRunning => _running.Values;

    public bool IsIdle(int queue) => _current[queue] is null && _waiting[queue].Count == 0;

    /// <summary>A submission was accepted (queued or about to run in place): it counts for its context until <see cref="Ended"/>.</summary>
    public void Accepted(Pending pending) =>
        _inFlight[pending.Submission.Context] = _inFlight.GetValueOrDefault(pending.Submission.Context) + 1;

    public void Queue(Pending pending) => _waiting[pending.Submission.Queue].Enqueue(pending);

    /// <summary>The next submission of an idle queue, if any.</summary>
    public bool TryNext(int queue, out Pending pending)
    {
        pending = null!;
        return _current[queue] is null && _waiting[queue].TryDequeue(out pending!);
    }

    public Running Start(Pending pending)
    {
        var running = new Running(pending);
        _current[pending.Submission.Queue] = running;
        _running[pending.Fence.Seq] = running;
        return running;
    }

    public bool TryGetRunning(long seq, out Running running) => _running.TryGetValue(seq, out running!);

    /// <summary>A running submission's work ended; its queue is free again.</summary>
    public bool TryFinish(long seq, out Running running)
    {
        if (!_running.Remove(seq, out running!)) return false;
        _current[running.Pending.Submission.Queue] = null;
        _busy += running.Elapsed.Elapsed;
        return true;
    }

    public void AddBusy(TimeSpan time) => _busy += time;

    /// <summary>Removes and returns the queued submissions that <paramref name="match"/>.</summary>
    public IReadOnlyList<Pending> RemoveQueued(Func<Pending, bool> match)
    {
        var removed = new List<Pending>();
        foreach (var queue in _waiting)
        {
            var kept = queue.Where(p => !match(p)).ToList();
            removed.AddRange(queue.Where(match));
            queue.Clear();
            foreach (var p in kept) queue.Enqueue(p);
        }
        return removed;
    }

    /// <summary>A submission ended (signalled); true when its context has none left queued or running.</summary>
    public bool Ended(Pending pending)
    {
        var context = pending.Submission.Context;
        var left = _inFlight.GetValueOrDefault(context) - 1;
        if (left > 0) _inFlight[context] = left;
        else _inFlight.Remove(context);
        return left <= 0;
    }

    public int InFlight(ContextId context) => _inFlight.GetValueOrDefault(context);

    /// <summary>Busy time over uptime, across all queues.</summary>
    public double Utilization()
    {
        var busy = _busy + _current.Where(r => r is not null).Aggregate(TimeSpan.Zero, (sum, r) => sum + r!.Elapsed.Elapsed);
        return Math.Min(1.0, busy.TotalSeconds / Math.Max(1e-9, _uptime.Elapsed.TotalSeconds * _waiting.Length));
    }
}
