using System.Collections.Immutable;

namespace Fabric.Devices.Internal.State;

/// <summary>
/// Which submissions use which mappings of one address space (iommufd's accesses on an area). Pure. A mapping is
/// named by its serial number, never by its IOVA, so a range mapped again while its old users drain is not theirs.
/// </summary>
internal sealed class RangeUses
{
    private readonly Dictionary<long, ImmutableArray<long>> _mappingsOfUse = [];
    private readonly Dictionary<long, HashSet<long>> _usesOfMapping = [];
    private long _next;

    public int Count => _mappingsOfUse.Count;

    /// <summary>A new use of <paramref name="mappings"/> (serials), until <see cref="End"/>.</summary>
    public long Begin(IEnumerable<long> mappings)
    {
        var use = ++_next;
        var distinct = mappings.Distinct().ToImmutableArray();
        _mappingsOfUse[use] = distinct;
        foreach (var mapping in distinct)
        {
            if (!_usesOfMapping.TryGetValue(mapping, out var uses)) _usesOfMapping[mapping] = uses = [];
            uses.Add(use);
        }
        return use;
    }

    /// <summary>The use ended (ran, failed or was refused); false when it was unknown or ended already.</summary>
    public bool End(long use)
    {
        if (!_mappingsOfUse.Remove(use, out var mappings)) return false;
        foreach (var mapping in mappings)
            if (_usesOfMapping.TryGetValue(mapping, out var uses) && uses.Remove(use) && uses.Count == 0) _usesOfMapping.Remove(mapping);
        return true;
    }

    /// <summary>Every live use of any of <paramref name="mappings"/>.</summary>
    public ImmutableHashSet<long> UsersOf(IEnumerable<long> mappings) =>
        [.. mappings.SelectMany(m => _usesOfMapping.TryGetValue(m, out var uses) ? uses : Enumerable.Empty<long>())];
}
