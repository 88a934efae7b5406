using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Devices.Internal.Commands;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices.Internal.State;

/// <summary>A context's argument checks that need no state of its own, in the kernel's order. Pure.</summary>
internal static class ContextChecks
{
    /// <summary>The most in-fences and out-fences one submission takes.</summary>
    public const int MaxFenceSlots = 64;

    /// <summary>Allocate, map and submit are device work: refused while the device is in reset (EBUSY) or gone (ENODEV).</summary>
    public static FabricError? DeviceBusy(DeviceStatus status, string context, DeviceId device, string what) => status switch
    {
        DeviceStatus.Operational => null,
        DeviceStatus.InReset => new FabricError(ErrorCode.EBUSY, $"{context} cannot {what}: {device} is in reset"),
        _ => new FabricError(ErrorCode.ENODEV, $"{context} cannot {what}: {device} is {status.ToString().ToLowerInvariant()}"),
    };

    /// <summary>iommufd's order for a map: flags, then a wrapping range, then permissions, then the address space id.</summary>
    public static FabricError? Map(Map m, string context, bool spaceKnown)
    {
        if ((m.Access & ~Access.ReadWrite) != 0)
            return FabricError.Invalid($"{context} cannot map {m.Handle}: unknown access bits 0x{(int)m.Access:x}");
        if (m.Iova is { } at && m.Length > 0 && (ulong)m.Length - 1 > ulong.MaxValue - at.Value)
            return new FabricError(ErrorCode.EOVERFLOW, $"{context} cannot map {m.Handle} at {at} for {m.Length} bytes: the range wraps past 2^64");
        if ((m.Access & Access.ReadWrite) == 0)
            return FabricError.Invalid($"{context} cannot map {m.Handle}: the access allows neither read nor write");
        return spaceKnown ? null : FabricError.NotFound($"{context} has no address space {m.Space}");
    }

    /// <summary>Checks a submission's queue and fence slots, then decodes its whole command buffer.</summary>
    public static FabricError? Submit(Submit m, string space, DeviceId device, DeviceProfile profile, out DecodedProgram? program)
    {
        program = null;
        var inFences = m.InFences.IsDefault ? 0 : m.InFences.Length;
        if (m.Queue < 0 || m.Queue >= profile.Queues) return FabricError.Invalid($"{space}: {device} has queues 0 to {profile.Queues - 1}, not {m.Queue}");
        if (inFences > MaxFenceSlots || m.OutFences is < 0 or > MaxFenceSlots)
            return FabricError.Invalid($"{space}: a submission takes at most {MaxFenceSlots} in-fences and {MaxFenceSlots} out-fences");
        return CommandDecoder.TryDecode(m.Commands, inFences, m.OutFences, out program, out var error) ? null : error;
    }

    /// <summary>
    /// Another node's memory is reached by DMA: only a COPY may touch it, and only one side of it (the other side
    /// is this node's memory). Compute commands work on local memory: copy the data in first.
    /// </summary>
    public static FabricError? RemoteRefusal(DecodedCommand command, MemoryOperand operand, BufferView buffer, bool bothSides)
    {
        if (bothSides)
            return FabricError.Invalid($"{command.Location}: both sides are memory of other nodes; one side of a COPY must be this device's memory");
        if (command is not CopyCommand)
            return FabricError.Invalid($"{command.Location}: operand {operand.Name} is {buffer}, memory of another node, which only COPY " +
                                       "can reach; copy it into this device's memory first");
        return null;
    }
}
