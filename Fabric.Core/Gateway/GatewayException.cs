namespace Fabric.Core.Gateway;

/// <summary>
/// A gateway request that failed, in one sentence. <see cref="Transient"/>: the gateway could not be reached, did not
/// answer in time, or answered 5xx — asking again may work; false for a refusal (4xx: an invalid spec, a taken id).
/// <see cref="Answered"/>: the gateway answered (with an error), so a node is there.
/// </summary>
public sealed class GatewayException(string message, bool transient = true, bool answered = false) : Exception(message)
{
    public bool Transient { get; } = transient;
    public bool Answered { get; } = answered;
}
