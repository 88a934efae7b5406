using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Core.Protocol;

/// <summary>
/// What a device shows without being opened (its sysfs / INFO ioctl): profile, memory and activity counters.
/// <see cref="Waiters"/>: fence waits not yet answered; <see cref="Imports"/>: dma-bufs its contexts hold imported.
/// </summary>
[MessagePackObject]
[Manifest("DeviceInfo")]
public sealed record DeviceInfo(
    [property: Key(0)] DeviceId Id,
    [property: Key(1)] string Kind,
    [property: Key(2)] int IommuGroup,
    [property: Key(3)] long PageSize,
    [property: Key(4)] int Queues,
    [property: Key(5)] long MemoryTotal,
    [property: Key(6)] long MemoryUsed,
    [property: Key(7)] long LargestFree,
    [property: Key(8)] double Fragmentation,
    [property: Key(9)] int Allocations,
    [property: Key(10)] int OpenContexts,
    [property: Key(11)] int Exports,
    [property: Key(12)] int QueueDepth,
    [property: Key(13)] long CompletedSubmissions,
    [property: Key(14)] long FailedSubmissions,
    [property: Key(15)] long Resets,
    [property: Key(16)] double Utilization,
    [property: Key(17)] bool Resetting,
    [property: Key(18)] int Waiters = 0,
    [property: Key(19)] int Imports = 0,
    [property: Key(20)] DeviceStatus Status = DeviceStatus.Operational,
    [property: Key(21)] string? Failure = null) : IFabricMessage
{
    [IgnoreMember] public long MemoryFree => MemoryTotal - MemoryUsed;
}

/// <summary>
/// A device's state as its sysfs <c>status</c> shows it (habanalabs: operational / in reset / malfunction), readable
/// without opening the device.
/// </summary>
public enum DeviceStatus
{
    /// <summary>Takes work.</summary>
    Operational = 0,
    /// <summary>A reset is running: allocate, map, submit, wait and open answer EBUSY until it ends.</summary>
    InReset = 1,
    /// <summary>The device actor failed and was stopped; its contexts were torn down. <see cref="DeviceInfo.Failure"/> says why.</summary>
    Malfunction = 2,
    /// <summary>The device was removed (hot-unplugged): every request for it answers ENODEV.</summary>
    Removed = 3,
}

/// <summary>What a context shows of itself: its objects and the faults its submissions caused.</summary>
[MessagePackObject]
[Manifest("ContextInfo")]
public sealed record ContextInfo(
    [property: Key(0)] DeviceId Device,
    [property: Key(1)] ContextId Id,
    [property: Key(2)] int Buffers,
    [property: Key(3)] long BufferBytes,
    [property: Key(4)] int AddressSpaces,
    [property: Key(5)] int Exports,
    [property: Key(6)] int Imports,
    [property: Key(7)] long Submissions,
    [property: Key(8)] long Faults,
    [property: Key(9)] string? LastFault) : IFabricMessage;
