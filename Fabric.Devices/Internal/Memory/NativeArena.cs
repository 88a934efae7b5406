using System.Runtime.InteropServices;

namespace Fabric.Devices.Internal.Memory;

/// <summary>
/// A device's memory: one page-aligned block outside the GC heap. The pages are not touched on allocation, so the
/// operating system commits them lazily and a large device stays small until it is used.
/// </summary>
internal sealed unsafe class NativeArena : IDisposable
{
    /// <summary>Alignment of <see cref="Base"/>: one 4 KiB page.</summary>
    public const int Alignment = 4096;

    // nint rather than byte* so that Dispose can claim it atomically and free it exactly once.
    private nint _base;

    public NativeArena(long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        if ((ulong)size > nuint.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(size), size, "the arena does not fit in this process's address space");
        try
        {
            _base = (nint)NativeMemory.AlignedAlloc((nuint)size, Alignment);
        }
        catch (OutOfMemoryException e)
        {
            throw new OutOfMemoryException($"the operating system refused to reserve {size:N0} bytes ({size / (double)(1L << 30):0.##} GiB) of address space " +
                                           "for device memory; give the devices less memory", e);
        }
        Size = size;
    }

    ~NativeArena() => Release();

    /// <summary>Size of the arena in bytes.</summary>
    public long Size { get; }

    /// <summary>First byte of the arena; valid until <see cref="Dispose"/>.</summary>
    public byte* Base
    {
        get
        {
            nint p = Volatile.Read(ref _base);
            ObjectDisposedException.ThrowIf(p == 0, this);
            return (byte*)p;
        }
    }

    public bool IsDisposed => Volatile.Read(ref _base) == 0;

    /// <summary>Pointer to <paramref name="offset"/>, after checking that [offset, offset + length) lies inside the arena.</summary>
    public byte* Pointer(long offset, long length)
    {
        CheckRange(offset, length);
        return Base + offset;
    }

    /// <summary>A span over [offset, offset + length); length must fit in an int.</summary>
    public Span<byte> Span(long offset, int length) => new(Pointer(offset, length), length);

    /// <summary>Zeroes [offset, offset + length), including ranges longer than <see cref="int.MaxValue"/>.</summary>
    public void Clear(long offset, long length)
    {
        byte* p = Pointer(offset, length);
        if (length > 0)
            NativeMemory.Clear(p, (nuint)length);
    }

    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    private void Release()
    {
        nint p = Interlocked.Exchange(ref _base, 0);
        if (p != 0)
            NativeMemory.AlignedFree((void*)p);
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || offset > Size)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"offset 0x{offset:x} is outside the arena of 0x{Size:x} bytes");
        if (length < 0 || length > Size - offset)
            throw new ArgumentOutOfRangeException(nameof(length), length,
                $"[0x{offset:x}, +0x{length:x}) runs past the end of the arena of 0x{Size:x} bytes");
    }
}
