using Fabric.Core;
using Fabric.Core.Protocol;

namespace Fabric.Node.Jobs;

/// <summary>
/// Where a ready task runs: a device with room for it, preferring the one that already holds most of its input bytes
/// (data locality: what is not there must cross the data plane), then the node and device this run loads least,
/// then a short queue and free memory; a device or node the task prefers comes before all that. Devices the
/// run has seen fail are avoided while others remain. Pure: given the same view, the same choice.
/// </summary>
public static class Scheduler
{
    /// <summary>A task to place: its memory need, the bytes of its inputs already on each device, and its constraints.</summary>
    /// <paramref name="Running"/>: tasks of this run now running on each device (spreads a wide stage over nodes).
    /// <paramref name="Prefer"/>: a node or device (<c>n2/dev1</c>) to take first when it qualifies (soft, unlike Node).
    public sealed record Demand(string Task, long MemoryBytes, IReadOnlyDictionary<DeviceId, long> InputBytesOn, string? Node, string? DeviceKind,
        IReadOnlyDictionary<DeviceId, int> Running, string? Prefer = null);

    public static DeviceId? Choose(Demand demand, IReadOnlyList<DeviceInfo> devices, IReadOnlySet<DeviceId> avoid)
    {
        var fitting = devices
            .Where(d => d.Status == DeviceStatus.Operational && d.MemoryFree >= demand.MemoryBytes - demand.InputBytesOn.GetValueOrDefault(d.Id))
            .Where(d => demand.Node is null || d.Id.Node == demand.Node)
            .Where(d => demand.DeviceKind is null || d.Kind == demand.DeviceKind)
            .ToList();
        var preferred = fitting.Where(d => !avoid.Contains(d.Id)).ToList();
        var candidates = preferred.Count > 0 ? preferred : fitting;
        int OnNode(string node) => demand.Running.Where(kv => kv.Key.Node == node).Sum(kv => kv.Value);
        DeviceId? preferredDevice = demand.Prefer is { } p && p.Contains('/') && DeviceId.TryParse(p, "", out var parsed) ? parsed : null;
        var preferredNode = preferredDevice?.Node ?? demand.Prefer;
        int Preference(DeviceId id) => preferredDevice == id ? 2 : id.Node == preferredNode ? 1 : 0;
        return candidates
            .OrderByDescending(d => Preference(d.Id))
            .ThenByDescending(d => demand.InputBytesOn.GetValueOrDefault(d.Id))
            .ThenBy(d => OnNode(d.Id.Node))
            .ThenBy(d => demand.Running.GetValueOrDefault(d.Id))
            .ThenBy(d => d.QueueDepth)
            .ThenByDescending(d => d.MemoryFree)
            .ThenBy(d => d.Id.Node, StringComparer.Ordinal).ThenBy(d => d.Id.Index)
            .Select(d => (DeviceId?)d.Id)
            .FirstOrDefault();
    }
}
