using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Core;

/// <summary>Errno-like codes. Values and meanings follow Linux, so a reader who knows the kernel uAPI knows these.</summary>
public enum ErrorCode
{
    /// <summary>Operation not permitted: wrong context, bad token, write to a read-only mapping or export.</summary>
    EPERM = 1,
    /// <summary>Unknown handle, IOVA, id or token.</summary>
    ENOENT = 2,
    /// <summary>Command aborted: device reset, export revoked, exporter lost.</summary>
    EIO = 5,
    /// <summary>Too big to carry: a request larger than one message may be (a job whose inline data exceeds the cluster's frame size).</summary>
    E2BIG = 7,
    /// <summary>Device memory exhausted.</summary>
    ENOMEM = 12,
    /// <summary>Permission denied.</summary>
    EACCES = 13,
    /// <summary>The device touched an unmapped or revoked address (an I/O page fault).</summary>
    EFAULT = 14,
    /// <summary>In use: a group member attached elsewhere, a device still attached, a reset running.</summary>
    EBUSY = 16,
    /// <summary>Already exists: a fixed IOVA range overlaps a live mapping.</summary>
    EEXIST = 17,
    /// <summary>Device or its node is gone.</summary>
    ENODEV = 19,
    /// <summary>Bad argument.</summary>
    EINVAL = 22,
    /// <summary>No free IOVA range.</summary>
    ENOSPC = 28,
    /// <summary>A range wraps around the address space.</summary>
    EOVERFLOW = 75,
    /// <summary>
    /// Address in use: a reserved IOVA region or an allowed IOVA range would cover a live mapping or each other, or a
    /// live mapping is not aligned to a new, larger page size (iommufd's answer when a device cannot join).
    /// </summary>
    EADDRINUSE = 98,
    /// <summary>A wait timed out (a device watchdog or a client deadline).</summary>
    ETIMEDOUT = 110,
    /// <summary>Cancelled on request (a job whose user cancelled it).</summary>
    ECANCELED = 125,
}

/// <summary>
/// The one failure reply of every Fabric operation: an errno-like code and a sentence that names the objects involved,
/// like iommufd's descriptive errors ("cannot attach dev1 ... because dev0 in the same group 10 is in use").
/// </summary>
[MessagePackObject]
[Manifest("FabricError")]
public sealed record FabricError([property: Key(0)] ErrorCode Code, [property: Key(1)] string Message) : IFabricMessage
{
    public override string ToString() => $"{Code}: {Message}";

    public static FabricError Invalid(string message) => new(ErrorCode.EINVAL, message);
    public static FabricError NotFound(string message) => new(ErrorCode.ENOENT, message);
}

/// <summary>Thrown by the client library when an operation answers with a <see cref="FabricError"/>.</summary>
public sealed class FabricException(FabricError error) : Exception(error.ToString())
{
    public FabricError Error { get; } = error;
    public ErrorCode Code => Error.Code;
}
