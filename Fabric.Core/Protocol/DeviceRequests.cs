using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Core.Protocol;

/// <summary>
/// Requests a client sends to a node's device manager (no context needed). Each is answered with the reply named
/// in its comment or with a <see cref="FabricError"/>.
/// </summary>
public static class DeviceRequests
{
    /// <summary>Lists every device of the node with its current info → <see cref="DeviceList"/>.</summary>
    [MessagePackObject]
    [Manifest("DeviceRequests.ListDevices")]
    public sealed record ListDevices : IFabricMessage;

    [MessagePackObject]
    [Manifest("DeviceRequests.DeviceList")]
    public sealed record DeviceList([property: Key(0)] ImmutableArray<DeviceInfo> Devices) : IFabricMessage;

    /// <summary>Reads one device's info without opening it → <see cref="DeviceInfo"/>; unknown device → ENODEV.</summary>
    [MessagePackObject]
    [Manifest("DeviceRequests.GetDeviceInfo")]
    public sealed record GetDeviceInfo([property: Key(0)] DeviceId Device) : IFabricMessage;

    /// <summary>
    /// Opens a device for <paramref name="Client"/> → <see cref="DeviceOpened"/>. The new context death-watches the
    /// client: when the client stops (or its process or node dies) the context releases everything it holds.
    /// </summary>
    [MessagePackObject]
    [Manifest("DeviceRequests.OpenDevice")]
    public sealed record OpenDevice([property: Key(0)] DeviceId Device, [property: Key(1)] IActorRef Client) : IFabricMessage;

    /// <summary>The context that <see cref="OpenDevice"/> created; every context request goes to <paramref name="Context"/>.</summary>
    [MessagePackObject]
    [Manifest("DeviceRequests.DeviceOpened")]
    public sealed record DeviceOpened(
        [property: Key(0)] DeviceId Device,
        [property: Key(1)] ContextId Id,
        [property: Key(2)] IActorRef Context,
        [property: Key(3)] DeviceInfo Info) : IFabricMessage;

    /// <summary>
    /// Waits until the fence signals or <paramref name="Timeout"/> passes → <see cref="FenceStatus"/>. A zero or expired
    /// timeout answers <see cref="FenceState.Busy"/>, which is not an error; a sequence number not yet issued → EINVAL.
    /// </summary>
    /// <remarks>
    /// A wait that names an <paramref name="Owner"/> and a <paramref name="Tag"/> can be cancelled with
    /// <see cref="CancelWait"/>; a cancelled wait is gone from the device at once (it is no longer counted as a waiter).
    /// While the device is in reset a wait answers EBUSY.
    /// </remarks>
    [MessagePackObject]
    [Manifest("DeviceRequests.WaitFence")]
    public sealed record WaitFence(
        [property: Key(0)] FenceId Fence,
        [property: Key(1)] TimeSpan Timeout,
        [property: Key(2)] IActorRef? Owner = null,
        [property: Key(3)] long Tag = 0) : IFabricMessage;

    /// <summary>
    /// Cancels the wait that <paramref name="Owner"/> started with <paramref name="Tag"/> on a fence of
    /// <paramref name="Device"/>: its waiter is removed at once and it gets no answer. No reply; unknown waits are ignored.
    /// </summary>
    [MessagePackObject]
    [Manifest("DeviceRequests.CancelWait")]
    public sealed record CancelWait([property: Key(0)] DeviceId Device, [property: Key(1)] IActorRef Owner, [property: Key(2)] long Tag)
        : IFabricMessage;

    /// <summary>The most fences one multi-wait takes (habanalabs' multi-CS wait takes 32); more → EINVAL.</summary>
    public const int MaxWaitFences = 32;

    /// <summary>
    /// Waits until any of the fences (all of one device) signals → <see cref="FenceSet"/> with every fence that had
    /// signalled by then; none before the timeout → an empty set (busy).
    /// </summary>
    /// <remarks>At most <see cref="MaxWaitFences"/> fences (EINVAL beyond); cancellable like <see cref="WaitFence"/>.</remarks>
    [MessagePackObject]
    [Manifest("DeviceRequests.WaitAnyFence")]
    public sealed record WaitAnyFence(
        [property: Key(0)] ImmutableArray<FenceId> Fences,
        [property: Key(1)] TimeSpan Timeout,
        [property: Key(2)] IActorRef? Owner = null,
        [property: Key(3)] long Tag = 0) : IFabricMessage;

    [MessagePackObject]
    [Manifest("DeviceRequests.FenceSet")]
    public sealed record FenceSet([property: Key(0)] ImmutableArray<FenceStatus> Signalled) : IFabricMessage;

    /// <summary>
    /// Resets a device (like a hard reset): every in-flight and queued submission ends with EIO, every waiter wakes,
    /// and while it runs the device refuses all work — open, allocate, map, submit and wait answer EBUSY, and its
    /// status reads <see cref="DeviceStatus.InReset"/> → <see cref="DeviceResetDone"/> when it is operational again.
    /// <paramref name="Hold"/> keeps the device in reset at least that long (a slow reset a test can observe).
    /// </summary>
    [MessagePackObject]
    [Manifest("DeviceRequests.ResetDevice")]
    public sealed record ResetDevice([property: Key(0)] DeviceId Device, [property: Key(1)] TimeSpan Hold = default) : IFabricMessage;

    [MessagePackObject]
    [Manifest("DeviceRequests.DeviceResetDone")]
    public sealed record DeviceResetDone([property: Key(0)] DeviceId Device, [property: Key(1)] int AbortedSubmissions) : IFabricMessage;
}

public enum FenceState
{
    /// <summary>Not signalled yet (the wait's timeout passed first, or it was zero).</summary>
    Busy = 0,
    /// <summary>Signalled without error.</summary>
    Completed = 1,
    /// <summary>Signalled with an error, set before it signalled.</summary>
    Failed = 2,
    /// <summary>Too old to track: it signalled long ago and its result is no longer kept.</summary>
    Gone = 3,
}

/// <summary>A fence's state as a wait saw it; <paramref name="Error"/> is set exactly when the state is Failed.</summary>
[MessagePackObject]
[Manifest("FenceStatus")]
public sealed record FenceStatus(
    [property: Key(0)] FenceId Fence,
    [property: Key(1)] FenceState State,
    [property: Key(2)] FabricError? Error) : IFabricMessage
{
    [IgnoreMember] public bool IsSignalled => State is FenceState.Completed or FenceState.Failed or FenceState.Gone;
}
