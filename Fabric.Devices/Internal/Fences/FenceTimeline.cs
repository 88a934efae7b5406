using Fabric.Core;
using Fabric.Core.Protocol;

namespace Fabric.Devices.Internal.Fences;

/// <summary>
/// A device's fences: sequence numbers issued in order, each signalled exactly once (ok or with an error set before
/// it signals). Results are kept for the newest <c>history</c> signalled fences; an older one reads as
/// <see cref="FenceState.Gone"/>. Pure state, owned by the device actor.
/// </summary>
internal sealed class FenceTimeline(DeviceId device, int history)
{
    private readonly Dictionary<long, FabricError?> _signalled = [];
    private readonly Queue<long> _signalOrder = new();
    private readonly HashSet<long> _pending = [];

    /// <summary>The last sequence number issued (0: none yet).</summary>
    public long LastIssued { get; private set; }

    public int Pending => _pending.Count;

    public FenceId Issue()
    {
        var seq = ++LastIssued;
        _pending.Add(seq);
        return new FenceId(device, seq);
    }

    /// <summary>Signals a pending fence. False when it had already signalled (a reported no-op) or was never issued.</summary>
    public bool Signal(long seq, FabricError? error)
    {
        if (!_pending.Remove(seq)) return false;
        _signalled[seq] = error;
        _signalOrder.Enqueue(seq);
        while (_signalOrder.Count > history) _signalled.Remove(_signalOrder.Dequeue());
        return true;
    }

    public bool IsIssued(long seq) => seq >= 1 && seq <= LastIssued;

    /// <summary>The fence's state now; call only for issued sequence numbers.</summary>
    public FenceStatus Status(long seq)
    {
        var id = new FenceId(device, seq);
        if (_pending.Contains(seq)) return new FenceStatus(id, FenceState.Busy, null);
        if (_signalled.TryGetValue(seq, out var error))
            return error is null ? new FenceStatus(id, FenceState.Completed, null) : new FenceStatus(id, FenceState.Failed, error);
        return new FenceStatus(id, FenceState.Gone, null);
    }
}
