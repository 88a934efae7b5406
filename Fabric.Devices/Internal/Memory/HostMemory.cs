using Fabric.Core.Client;

namespace Fabric.Devices.Internal.Memory;

/// <summary>
/// Host memory standing in for a device buffer (habanalabs userptr): the client's own pinned memory when the client
/// runs in this process (zero-copy), or else a zeroed copy in this node's host memory that the client fills and
/// reads back. It never comes out of the device's memory. The last release unpins the client's memory or frees the copy.
/// </summary>
internal sealed unsafe class HostMemory : IBlockSource
{
    private readonly HostMemoryPins.Pin? _pin;
    private readonly NativeArena? _copy;

    private HostMemory(HostMemoryPins.Pin? pin, NativeArena? copy) => (_pin, _copy) = (pin, copy);

    /// <summary>The client's memory itself; the pin is released with the block.</summary>
    public static MemoryBlock Pinned(HostMemoryPins.Pin pin) => new(new HostMemory(pin, null), 0, pin.Length, pin.Pointer);

    /// <summary>A zeroed copy of <paramref name="size"/> bytes in this node's memory.</summary>
    public static MemoryBlock Copy(long size)
    {
        var arena = new NativeArena(size);
        arena.Clear(0, size);
        return new MemoryBlock(new HostMemory(null, arena), 0, size, arena.Base);
    }

    public void Free(MemoryBlock block)
    {
        _pin?.Unpin();
        _copy?.Dispose();
    }
}
