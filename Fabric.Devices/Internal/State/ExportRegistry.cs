namespace Fabric.Devices.Internal.State;

/// <summary>
/// The references one dma-buf export holds: its exporter's and one per attachment of an importer (an importer may
/// attach several times). Pure: the export actor death-watches importers and asks this table what to do; the export
/// is released when <see cref="Unreferenced"/> (dma-buf's last reference dropped).
/// </summary>
internal sealed class ExportRegistry<TImporter> where TImporter : notnull
{
    private readonly Dictionary<long, TImporter> _attachments = [];
    private long _next;

    public bool ExporterHolds { get; private set; } = true;

    public int Attachments => _attachments.Count;

    public bool Unreferenced => !ExporterHolds && _attachments.Count == 0;

    /// <summary>Every importer attached now, once each.</summary>
    public IReadOnlyList<TImporter> Importers => [.. _attachments.Values.Distinct()];

    /// <summary>A new attachment; <paramref name="firstOfImporter"/> says whether the importer must be watched now.</summary>
    public long Attach(TImporter importer, out bool firstOfImporter)
    {
        firstOfImporter = !_attachments.ContainsValue(importer);
        var id = ++_next;
        _attachments[id] = importer;
        return id;
    }

    /// <summary>Ends one attachment; <paramref name="lastOfImporter"/> says whether the importer may be unwatched.</summary>
    public bool Detach(long attachment, out TImporter importer, out bool lastOfImporter)
    {
        lastOfImporter = false;
        if (!_attachments.Remove(attachment, out importer!)) return false;
        lastOfImporter = !_attachments.ContainsValue(importer);
        return true;
    }

    /// <summary>The importer is gone: every attachment of it ends; returns them.</summary>
    public IReadOnlyList<long> DetachAll(TImporter importer)
    {
        var ended = _attachments.Where(kv => kv.Value.Equals(importer)).Select(kv => kv.Key).ToList();
        foreach (var id in ended) _attachments.Remove(id);
        return ended;
    }

    public void ExporterReleased() => ExporterHolds = false;
}
