namespace Fabric.Devices.Internal.Memory;

/// <summary>
/// A device's memory: one native arena and the allocator that hands out blocks of it. Thread-safe: blocks are
/// released from whichever actor or kernel drops their last reference. The arena is freed once the device is gone
/// and no block remains, so a late release never touches freed memory.
/// </summary>
internal sealed unsafe class DeviceMemory : IBlockSource, IDisposable
{
    private readonly NativeArena _arena;
    private readonly BlockAllocator _allocator;
    private readonly Lock _gate = new();
    private int _liveBlocks;
    private bool _disposed;

    public DeviceMemory(long size, long granule)
    {
        _arena = new NativeArena(size);
        _allocator = new BlockAllocator(size, granule);
        Granule = granule;
    }

    public long Granule { get; }

    public AllocatorStats Stats => _allocator.Stats;

    /// <summary>A zeroed block holding one reference (the caller's), or null when no free range fits.</summary>
    public MemoryBlock? TryAllocate(long size, long alignment)
    {
        var rounded = (size + Granule - 1) / Granule * Granule;
        lock (_gate)
        {
            if (_disposed) return null;
            if (!_allocator.TryAllocate(rounded, Math.Max(alignment, Granule), out var offset)) return null;
            _liveBlocks++;
            _arena.Clear(offset, rounded);
            return new MemoryBlock(this, offset, rounded, _arena.Pointer(offset, rounded));
        }
    }

    public void Free(MemoryBlock block)
    {
        lock (_gate)
        {
            _allocator.Free(block.Offset);
            _liveBlocks--;
            if (_disposed && _liveBlocks == 0) _arena.Dispose();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            if (_liveBlocks == 0) _arena.Dispose();
        }
    }
}

/// <summary>
/// A block of device memory with a reference count, like a dma-buf's: the owning handle, an export and every
/// in-flight submission that uses it each hold one. The last release returns it to its source (the device's
/// allocator, or the host memory it stands for). Once the count has reached zero no new reference can be taken
/// (<see cref="TryAcquire"/> is get_unless_zero).
/// </summary>
internal sealed unsafe class MemoryBlock
{
    private readonly IBlockSource _source;
    private int _references = 1;

    internal MemoryBlock(IBlockSource source, long offset, long size, byte* pointer)
    {
        _source = source;
        Offset = offset;
        Size = size;
        Pointer = pointer;
    }

    public long Offset { get; }
    public long Size { get; }
    public byte* Pointer { get; }
    public int References => Volatile.Read(ref _references);

    public bool TryAcquire()
    {
        while (true)
        {
            var current = Volatile.Read(ref _references);
            if (current == 0) return false;
            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current) return true;
        }
    }

    public void Release()
    {
        var left = Interlocked.Decrement(ref _references);
        if (left == 0) _source.Free(this);
        else if (left < 0) throw new InvalidOperationException($"device memory block at {Offset} released more often than acquired");
    }
}

/// <summary>Where a <see cref="MemoryBlock"/>'s memory comes from; told once, when its last reference is released.</summary>
internal interface IBlockSource
{
    void Free(MemoryBlock block);
}
