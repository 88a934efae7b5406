using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Fabric.Core.Serialization;
using Fabric.Devices.DataPlane;

namespace Fabric.Devices;

/// <summary>Starts the device stack of one node inside an ActorSystem.</summary>
public static class FabricDevices
{
    /// <summary>The name of the device manager under /user.</summary>
    public const string ManagerName = "devices";

    /// <summary>An ActorSystem setup with the Fabric serializer bound, plus any extra configuration.</summary>
    public static ActorSystemSetup SystemSetup(Config? config = null) =>
        BootstrapSetup.Create().WithConfig(config ?? Config.Empty).And(FabricSerialization.Setup());

    /// <summary>Creates the node's device manager (and so its devices) as /user/devices.</summary>
    /// <param name="dataPlane">Serves this node's exports to other nodes and reaches theirs; null: exports stay on this node.</param>
    /// <param name="faults">Tests only: where actors of the stack throw on purpose.</param>
    public static IActorRef Start(ActorSystem system, string node, IReadOnlyList<DeviceProfile> profiles, FabricDataPlane? dataPlane = null,
        FaultPlan? faults = null) =>
        system.ActorOf(DeviceManager.Props(node, profiles, dataPlane, faults), ManagerName);
}
