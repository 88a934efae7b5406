using Fabric.Core;

namespace Fabric.Devices.Internal.State;

/// <summary>
/// The per-context resource limits of a device's profile (issue 13): pure decisions that refuse one more buffer or
/// mapping (ENOSPC, "no room", as habanalabs' handle idr does) or one more pending submission (EBUSY, "too many in
/// flight", as a full CS queue does), and one more fence wait of a client (EBUSY: waits go to the device without a
/// context, so they are counted per waiting client). Each refusal names the holder, its count and the limit; null
/// lets it go ahead.
/// The owner of each count asks before it creates the resource, so a refusal changes nothing.
/// </summary>
internal static class ContextLimits
{
    /// <summary>May a context that holds <paramref name="held"/> buffers take one more?</summary>
    public static FabricError? Buffer(string context, int held, int limit) => held < limit ? null
        : new FabricError(ErrorCode.ENOSPC, $"context {context} holds {held} buffers, its limit: allocate fewer or free some");

    /// <summary>May a context whose buffers have <paramref name="held"/> mappings add <paramref name="adding"/> more?</summary>
    public static FabricError? Mappings(string context, int held, int adding, int limit) => (long)held + adding <= limit ? null
        : new FabricError(ErrorCode.ENOSPC, adding == 1 && held >= limit
            ? $"context {context} holds {held} mappings, its limit: map fewer or unmap some"
            : $"context {context} holds {held} mappings and asks for {adding} more, past its limit of {limit}: map fewer or unmap some");

    /// <summary>May a context with <paramref name="pending"/> submissions accepted and not signalled add one more?</summary>
    public static FabricError? Submission(string context, int pending, int limit) => pending < limit ? null
        : new FabricError(ErrorCode.EBUSY, $"context {context} has {pending} submissions pending, its limit; wait for some");

    /// <summary>May <paramref name="client"/>, with <paramref name="waiting"/> fence waits unanswered on <paramref name="device"/>, add one more?</summary>
    public static FabricError? Waiter(string client, string device, int waiting, int limit) => waiting < limit ? null
        : new FabricError(ErrorCode.EBUSY, $"client {client} has {waiting} fence waits pending on {device}, its limit; wait for some");
}
