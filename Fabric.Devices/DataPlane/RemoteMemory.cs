using Fabric.Core;
using MessagePack;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// An import of another node's export: where its data plane listens and the attachment credential it issued.
/// The key is a per-attachment secret; with the attachment id it proves to the exporter's data plane that this
/// importer is attached, so no one else can read or write the memory.
/// </summary>
[MessagePackObject]
public sealed record RemoteMemory(
    [property: Key(0)] ExportId Export,
    [property: Key(1)] string Endpoint,
    [property: Key(2)] long Attachment,
    [property: Key(3)] byte[] Key,
    [property: Key(4)] long Size,
    [property: Key(5)] Access Access)
{
    public override string ToString() => $"{Export} via {Endpoint}";
}
