namespace Fabric.Core.Serialization;

/// <summary>
/// The wire name of an <see cref="IFabricMessage"/>: the string manifest the Fabric serializer writes beside its bytes,
/// in remote messages and in every journal row and snapshot. Every concrete message type carries one, and no two share
/// one; the type may be renamed or moved, the manifest never changes once a build that uses it has shipped (stored
/// journals and older nodes know the type only by it). The convention for new messages is
/// <c>ProtocolClass.Message</c>, e.g. <c>[Manifest("ContextRequests.Allocate")]</c>; the golden list in
/// <c>Fabric.Tests/Serialization/Golden/manifests.txt</c> holds every manifest in use.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false, AllowMultiple = false)]
public sealed class ManifestAttribute : Attribute
{
    public ManifestAttribute(string name) => Name = name;

    public string Name { get; }
}
