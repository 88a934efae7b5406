namespace Fabric.Core;

/// <summary>
/// Marker of every message that may cross a process boundary. Akka binds this interface to the Fabric MessagePack
/// serializer, so every implementation needs an explicit MessagePack contract.
/// </summary>
public interface IFabricMessage;
