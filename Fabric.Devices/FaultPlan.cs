using System.Collections.Concurrent;

namespace Fabric.Devices;

/// <summary>
/// Fault injection for tests of supervision: a site armed here throws <see cref="InjectedFault"/> the next time the
/// device stack passes it, from inside the real actor handling a real request. Nodes run without a plan (every
/// check is a null test). Sites are named by <see cref="Sites"/>.
/// </summary>
public sealed class FaultPlan
{
    private readonly ConcurrentDictionary<string, int> _armed = new(StringComparer.Ordinal);

    /// <summary>The places a fault can be injected, each in the middle of an operation.</summary>
    public static class Sites
    {
        /// <summary>A context handling Map, after it counted the mapping and before the address space has it.</summary>
        public const string ContextMap = "context.map";
        /// <summary>An address space handling a map, after the range is in its IOVA map and before it answers.</summary>
        public const string AddressSpaceMap = "address-space.map";
        /// <summary>An export handling an attach, after the attachment is registered and before the importer hears.</summary>
        public const string ExportAttach = "export.attach";
        /// <summary>A device queueing a submission, after its fences were issued.</summary>
        public const string DeviceEnqueue = "device.enqueue";
    }

    /// <summary>The next <paramref name="times"/> passes of <paramref name="site"/> throw.</summary>
    public FaultPlan Arm(string site, int times = 1)
    {
        _armed.AddOrUpdate(site, times, (_, left) => left + times);
        return this;
    }

    /// <summary>Called by the device stack at <paramref name="site"/>: throws when the site is armed.</summary>
    internal void Pass(string site, string where)
    {
        while (_armed.TryGetValue(site, out var left) && left > 0)
            if (_armed.TryUpdate(site, left - 1, left)) throw new InjectedFault($"fault injected at {site} in {where}");
    }
}

/// <summary>The exception a <see cref="FaultPlan"/> throws: an actor failing in the middle of its work.</summary>
public sealed class InjectedFault(string message) : InvalidOperationException(message);
