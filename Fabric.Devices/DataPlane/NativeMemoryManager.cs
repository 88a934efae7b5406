using System.Buffers;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// Lets a range of device memory (native, outside the GC heap) be handed to async socket calls as
/// <see cref="Memory{T}"/>, so bytes go between the wire and the arena with no copy in between. The caller keeps the
/// range pinned (a block reference) for as long as the memory is in use.
/// </summary>
internal sealed unsafe class NativeMemoryManager(byte* pointer, int length) : MemoryManager<byte>
{
    public override Span<byte> GetSpan() => new(pointer, length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(pointer + elementIndex);

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
