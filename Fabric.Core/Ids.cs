using MessagePack;

namespace Fabric.Core;

/// <summary>A device of the fabric: the node that hosts it and its index there, written <c>node/devN</c>.</summary>
[MessagePackObject]
public readonly record struct DeviceId([property: Key(0)] string Node, [property: Key(1)] int Index)
{
    public override string ToString() => $"{Node}/dev{Index}";

    /// <summary>Parses <c>node/devN</c>; a bare <c>devN</c> or <c>N</c> means <paramref name="defaultNode"/>.</summary>
    public static bool TryParse(string text, string defaultNode, out DeviceId id)
    {
        id = default;
        var slash = text.LastIndexOf('/');
        var node = slash < 0 ? defaultNode : text[..slash];
        var tail = slash < 0 ? text : text[(slash + 1)..];
        if (tail.StartsWith("dev", StringComparison.Ordinal)) tail = tail[3..];
        if (node.Length == 0 || !int.TryParse(tail, out var index) || index < 0) return false;
        id = new DeviceId(node, index);
        return true;
    }
}

/// <summary>An open of a device (a Linux open file of /dev/accel/accelN), unique on its device.</summary>
[MessagePackObject]
public readonly record struct ContextId([property: Key(0)] long Value)
{
    public override string ToString() => $"ctx-{Value}";
}

/// <summary>
/// A device-memory allocation, like a habanalabs memory handle. Valid only in the context that holds it; the
/// context's id is part of the value (high 32 bits), so a context can tell another context's handle (EPERM) from
/// one that never existed (EINVAL).
/// </summary>
[MessagePackObject]
public readonly record struct BufferHandle([property: Key(0)] long Value)
{
    /// <summary>The handle number <paramref name="number"/> of context <paramref name="context"/>.</summary>
    public static BufferHandle Of(ContextId context, long number) => new((context.Value << 32) | (number & 0xFFFF_FFFF));

    /// <summary>The context that issued the handle (0 for a handle made up by hand).</summary>
    [IgnoreMember] public long ContextValue => Value >>> 32;

    public override string ToString() => ContextValue == 0 ? $"buf-{Value}" : $"buf-{Value & 0xFFFF_FFFF}@ctx-{ContextValue}";
}

/// <summary>An I/O address space (iommufd IOAS, PASID-tagged) of a context.</summary>
[MessagePackObject]
public readonly record struct AddressSpaceId([property: Key(0)] long Value)
{
    public override string ToString() => $"as-{Value}";
}

/// <summary>A dma-buf export of a device buffer, unique on its device.</summary>
[MessagePackObject]
public readonly record struct ExportId([property: Key(0)] DeviceId Device, [property: Key(1)] long Value)
{
    public override string ToString() => $"{Device}/export-{Value}";
}

/// <summary>
/// A fence (a dma_fence): a point on its device's timeline, signalled exactly once with ok or an error.
/// Submission fences and out-fences share the device's sequence numbers.
/// </summary>
[MessagePackObject]
public readonly record struct FenceId([property: Key(0)] DeviceId Device, [property: Key(1)] long Seq)
{
    public override string ToString() => $"{Device}/fence-{Seq}";
}

/// <summary>
/// Names host memory a client pinned for a device (<see cref="Client.HostMapping"/>): the process that pinned it
/// and its number there. A node in that same process maps the memory itself (zero-copy); any other node cannot
/// reach it and keeps a copy instead.
/// </summary>
[MessagePackObject]
public readonly record struct HostMemoryToken([property: Key(0)] Guid Process, [property: Key(1)] long Id)
{
    public override string ToString() => $"host-memory-{Id}";
}

/// <summary>
/// The unforgeable capability that stands for a dma-buf fd: the export it names and a 256-bit secret.
/// Whoever holds the token may import the buffer; nothing else grants access.
/// </summary>
[MessagePackObject]
public readonly record struct ExportToken([property: Key(0)] ExportId Export, [property: Key(1)] string Secret)
{
    /// <summary>Shows the export, never the secret.</summary>
    public override string ToString() => $"token({Export})";
}

/// <summary>
/// An I/O virtual address in an address space. Converts to and from <see cref="ulong"/> so it can be offset and
/// written into command buffers directly.
/// </summary>
[MessagePackObject]
public readonly record struct Iova([property: Key(0)] ulong Value)
{
    public static implicit operator ulong(Iova iova) => iova.Value;
    public static implicit operator Iova(ulong value) => new(value);
    public override string ToString() => $"0x{Value:x}";
}
