namespace Fabric.Devices;

/// <summary>
/// What one emulated device is: its memory, queues, page size, IOMMU group and watchdog. Devices of one node that
/// share an <see cref="IommuGroup"/> cannot be isolated from each other: only one of them at a time may be attached
/// to address spaces (by any number of its own contexts).
/// </summary>
public sealed record DeviceProfile
{
    public const long DefaultMemoryBytes = 256L << 20;

    /// <summary>A name for the kind of device, shown in enumeration.</summary>
    public string Kind { get; init; } = "fabric-sim";

    /// <summary>Device memory (a native arena, not managed memory).</summary>
    public long MemoryBytes { get; init; } = DefaultMemoryBytes;

    /// <summary>Hardware queues: in order within one, concurrent across them.</summary>
    public int Queues { get; init; } = 4;

    /// <summary>IOMMU page size: mapping IOVAs and lengths are multiples of it; allocations are rounded up to it.</summary>
    public long PageSize { get; init; } = 4096;

    /// <summary>
    /// Width of the device's IOVA aperture: an address space it is attached to takes IOVAs below 2^IovaBits only (the
    /// rest reads as reserved in its usable ranges), and widens back when it detaches.
    /// </summary>
    public int IovaBits { get; init; } = 48;

    /// <summary>IOVA ranges (inclusive) the device cannot use, such as an MSI window: reserved while it is attached.</summary>
    public System.Collections.Immutable.ImmutableArray<(ulong Start, ulong Last)> ReservedIovas { get; init; } = [];

    /// <summary>IOMMU group; null gives the device a group of its own.</summary>
    public int? IommuGroup { get; init; }

    /// <summary>A submission running longer than this is stopped and its fence fails with ETIMEDOUT.</summary>
    public TimeSpan Watchdog { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How many signalled fences keep their result; older ones answer "gone" (completed, too old to track).</summary>
    public int FenceHistory { get; init; } = 65_536;

    /// <summary>
    /// Most buffer handles one context holds at once (allocated, pinned and imported); one more → ENOSPC. Device memory
    /// bounds allocations long before this default (a 256 MiB device holds 65 536 pages).
    /// </summary>
    public int MaxBuffersPerContext { get; init; } = 1 << 20;

    /// <summary>Most mappings one context's buffers have at once, across its address spaces; one more → ENOSPC.</summary>
    public int MaxMappingsPerContext { get; init; } = 1 << 20;

    /// <summary>
    /// Most submissions of one context accepted and not yet signalled on this device; one more → EBUSY, nothing issued.
    /// A job's run keeps at most its parallelism (256 by default) in flight per context, far below this default.
    /// </summary>
    public int MaxPendingSubmissionsPerContext { get; init; } = 65_536;

    /// <summary>
    /// Most fence waits one client (its session) has unanswered on this device; one more → EBUSY. Waits reach the
    /// device without a context, so they count per client; waits on a client's own submissions are answered in the
    /// client and never reach it, and a wait that is answered at once (signalled, or a zero timeout) is not counted.
    /// </summary>
    public int MaxFenceWaitersPerClient { get; init; } = 65_536;

    /// <summary>Checks the profile; throws <see cref="ArgumentException"/> naming the bad field.</summary>
    public DeviceProfile Validate()
    {
        if (MemoryBytes <= 0) throw new ArgumentException($"device memory must be positive, not {MemoryBytes}", nameof(MemoryBytes));
        if (Queues is < 1 or > 64) throw new ArgumentException($"queues must be 1..64, not {Queues}", nameof(Queues));
        if (PageSize < 256 || (PageSize & (PageSize - 1)) != 0)
            throw new ArgumentException($"page size must be a power of two of at least 256, not {PageSize}", nameof(PageSize));
        if (MemoryBytes % PageSize != 0) throw new ArgumentException($"device memory {MemoryBytes} is not a multiple of the page size {PageSize}", nameof(MemoryBytes));
        if (Watchdog <= TimeSpan.Zero) throw new ArgumentException("the watchdog must be positive", nameof(Watchdog));
        if (IovaBits is < 20 or > 64) throw new ArgumentException($"the IOVA aperture must be 20 to 64 bits wide, not {IovaBits}", nameof(IovaBits));
        if (ReservedIovas.Any(r => r.Start > r.Last)) throw new ArgumentException("a reserved IOVA range must start at or below its last IOVA", nameof(ReservedIovas));
        if (FenceHistory < 16) throw new ArgumentException("the fence history must keep at least 16 fences", nameof(FenceHistory));
        if (MaxBuffersPerContext < 1) throw new ArgumentException($"a context must be allowed at least 1 buffer, not {MaxBuffersPerContext}", nameof(MaxBuffersPerContext));
        if (MaxMappingsPerContext < 1) throw new ArgumentException($"a context must be allowed at least 1 mapping, not {MaxMappingsPerContext}", nameof(MaxMappingsPerContext));
        if (MaxPendingSubmissionsPerContext < 1)
            throw new ArgumentException($"a context must be allowed at least 1 pending submission, not {MaxPendingSubmissionsPerContext}", nameof(MaxPendingSubmissionsPerContext));
        if (MaxFenceWaitersPerClient < 1)
            throw new ArgumentException($"a client must be allowed at least 1 fence wait, not {MaxFenceWaitersPerClient}", nameof(MaxFenceWaitersPerClient));
        return this;
    }
}
