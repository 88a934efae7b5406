using System.Collections.Immutable;
using Akka.Serialization;

namespace Fabric.Core.Serialization;

/// <summary>Binds <see cref="IFabricMessage"/> to <see cref="FabricMessageSerializer"/> for an ActorSystem.</summary>
public static class FabricSerialization
{
    public const string SerializerName = "fabric";

    /// <summary>The setup to pass when creating an ActorSystem (client processes, nodes, tests alike).</summary>
    public static SerializationSetup Setup() => SerializationSetup.Create(system =>
        ImmutableHashSet.Create(SerializerDetails.Create(
            SerializerName,
            new FabricMessageSerializer(system),
            ImmutableHashSet.Create(typeof(IFabricMessage)))));
}
