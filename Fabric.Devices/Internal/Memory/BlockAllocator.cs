using System.Numerics;

namespace Fabric.Devices.Internal.Memory;

/// <summary>A snapshot of a <see cref="BlockAllocator"/>'s bookkeeping.</summary>
internal readonly record struct AllocatorStats(long Capacity, long Used, long Free, long LargestFree, int Allocations, int FreeBlocks)
{
    /// <summary>0 when all free space is one block; close to 1 when it is scattered in many small blocks.</summary>
    public double Fragmentation => Free == 0 ? 0 : 1 - (double)LargestFree / Free;
}

/// <summary>
/// Hands out offsets inside an arena: first fit over a free list ordered by offset, splitting blocks on allocation and
/// coalescing neighbours on free. Every size and offset is a multiple of the granule. Thread-safe.
/// </summary>
internal sealed class BlockAllocator
{
    private readonly Lock _lock = new();
    // Free blocks ordered by offset; never adjacent (they are coalesced) and never empty.
    private readonly List<Block> _free = [];
    // Live allocations: offset → size (rounded to the granule).
    private readonly Dictionary<long, long> _used = [];
    private long _usedBytes;

    /// <param name="capacity">Bytes to manage; rounded down to a multiple of the granule.</param>
    /// <param name="granule">Allocation unit, a power of two.</param>
    public BlockAllocator(long capacity, long granule = 256)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        if (granule <= 0 || !BitOperations.IsPow2(granule))
            throw new ArgumentOutOfRangeException(nameof(granule), granule, "the granule must be a power of two");
        Granule = granule;
        Capacity = capacity & ~(granule - 1);
        if (Capacity > 0)
            _free.Add(new Block(0, Capacity));
    }

    /// <summary>Usable bytes (the constructor's capacity rounded down to the granule).</summary>
    public long Capacity { get; }

    public long Granule { get; }

    /// <summary>
    /// Finds the lowest free offset aligned to max(alignment, granule) with room for size bytes (rounded up to the
    /// granule). False when no free block can hold it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">size is not positive or alignment is not a power of two.</exception>
    public bool TryAllocate(long size, long alignment, out long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        if (alignment <= 0 || !BitOperations.IsPow2(alignment))
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "the alignment must be a power of two");
        offset = -1;
        if (size > Capacity)
            return false;
        long rounded = (size + Granule - 1) & ~(Granule - 1); // cannot overflow: size <= Capacity, a granule multiple
        ulong align = (ulong)Math.Max(alignment, Granule);

        lock (_lock)
        {
            for (int i = 0; i < _free.Count; i++)
            {
                Block b = _free[i];
                ulong end = (ulong)b.End;
                // ulong: offset + align - 1 < 2^63 + 2^62 cannot overflow.
                ulong start = ((ulong)b.Offset + align - 1) & ~(align - 1);
                if (start >= end || end - start < (ulong)rounded)
                    continue;

                long at = (long)start;
                long tail = b.End - (at + rounded);
                long head = at - b.Offset;
                if (head > 0 && tail > 0)
                {
                    _free[i] = new Block(b.Offset, head);
                    _free.Insert(i + 1, new Block(at + rounded, tail));
                }
                else if (head > 0)
                    _free[i] = new Block(b.Offset, head);
                else if (tail > 0)
                    _free[i] = new Block(at + rounded, tail);
                else
                    _free.RemoveAt(i);

                _used.Add(at, rounded);
                _usedBytes += rounded;
                offset = at;
                return true;
            }
        }
        return false;
    }

    /// <summary>Returns an allocation to the free list, merging it with free neighbours.</summary>
    /// <exception cref="InvalidOperationException">offset is not a live allocation (a double free or a stray offset).</exception>
    public void Free(long offset)
    {
        lock (_lock)
        {
            if (!_used.Remove(offset, out long size))
                throw new InvalidOperationException($"offset 0x{offset:x} is not a live allocation");
            _usedBytes -= size;

            int i = LowerBound(offset); // first free block after offset
            bool mergePrev = i > 0 && _free[i - 1].End == offset;
            bool mergeNext = i < _free.Count && _free[i].Offset == offset + size;
            if (mergePrev && mergeNext)
            {
                Block prev = _free[i - 1];
                _free[i - 1] = new Block(prev.Offset, prev.Size + size + _free[i].Size);
                _free.RemoveAt(i);
            }
            else if (mergePrev)
            {
                Block prev = _free[i - 1];
                _free[i - 1] = new Block(prev.Offset, prev.Size + size);
            }
            else if (mergeNext)
                _free[i] = new Block(offset, size + _free[i].Size);
            else
                _free.Insert(i, new Block(offset, size));
        }
    }

    /// <summary>Size (rounded to the granule) of the live allocation at offset.</summary>
    /// <exception cref="InvalidOperationException">offset is not a live allocation.</exception>
    public long SizeOf(long offset)
    {
        lock (_lock)
        {
            return _used.TryGetValue(offset, out long size)
                ? size
                : throw new InvalidOperationException($"offset 0x{offset:x} is not a live allocation");
        }
    }

    public AllocatorStats Stats
    {
        get
        {
            lock (_lock)
            {
                long largest = 0;
                foreach (Block b in _free)
                    largest = Math.Max(largest, b.Size);
                return new AllocatorStats(Capacity, _usedBytes, Capacity - _usedBytes, largest, _used.Count, _free.Count);
            }
        }
    }

    // Index of the first free block whose offset is >= offset.
    private int LowerBound(long offset)
    {
        int lo = 0, hi = _free.Count;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (_free[mid].Offset < offset)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    }

    private readonly record struct Block(long Offset, long Size)
    {
        public long End => Offset + Size;
    }
}
