namespace Fabric.Devices.Internal.Memory;

/// <summary>
/// How many dma-bufs (of this device or any other, on this node or another) the contexts of one device hold imported
/// right now. The device's contexts count up on each import and down on each release (a free, or the context
/// stopping); the device reads it for its info, as it reads its allocator's counters.
/// </summary>
internal sealed class ImportCount
{
    private int _value;

    public int Value => Volatile.Read(ref _value);

    public void Added() => Interlocked.Increment(ref _value);

    public void Released() => Interlocked.Decrement(ref _value);
}
