using System.Reflection;
using System.Reflection.Emit;
using Fabric.Core;
using Fabric.Core.Serialization;
using Fabric.Node.Jobs;

namespace Fabric.Tests.Serialization;

/// <summary>
/// How the serializer's manifest table is built: from <see cref="ManifestAttribute"/>s only, and never past a message
/// without one or a manifest declared twice. The faulty messages are made at run time in dynamic assemblies, which the
/// process-wide table does not scan, so they cannot break the other tests.
/// </summary>
public sealed class ManifestTableTests
{
    [Fact]
    public void A_message_without_a_manifest_stops_the_build_naming_it()
    {
        var unmarked = MakeMessage("Protocol.Unmarked", manifest: null);

        var error = Assert.Throws<InvalidOperationException>(() => FabricMessageTypes.Build([typeof(FabricError), unmarked]));

        Assert.Contains("Protocol.Unmarked", error.Message);
        Assert.Contains("without a [Manifest", error.Message);
        Assert.DoesNotContain(unmarked, FabricMessageTypes.All.Values);
    }

    [Fact]
    public void Two_messages_with_one_manifest_stop_the_build_naming_both()
    {
        var first = MakeMessage("Protocol.First", "Protocol.Same");
        var second = MakeMessage("Protocol.Second", "Protocol.Same");

        var error = Assert.Throws<InvalidOperationException>(() => FabricMessageTypes.Build([first, second]));

        Assert.Contains("'Protocol.Same'", error.Message);
        Assert.Contains("Protocol.First", error.Message);
        Assert.Contains("Protocol.Second", error.Message);
    }

    [Fact]
    public void A_message_that_takes_a_manifest_of_the_build_stops_it()
    {
        var impostor = MakeMessage("Protocol.Impostor", "JobEvents.Submitted");

        var error = Assert.Throws<InvalidOperationException>(() => FabricMessageTypes.Build([typeof(JobEvents.Submitted), impostor]));

        Assert.Contains(typeof(JobEvents.Submitted).FullName!, error.Message);
        Assert.Contains("Protocol.Impostor", error.Message);
    }

    [Fact]
    public void The_manifest_is_the_attribute_not_the_type_name()
    {
        var renamed = MakeMessage("Elsewhere.SubmittedV2", "JobEvents.Submitted");
        var abstractOne = typeof(JobEvents.IJobEvent);

        var table = FabricMessageTypes.Build([renamed, abstractOne, typeof(string)]);

        Assert.Equal(renamed, Assert.Single(table).Value);
        Assert.Equal("JobEvents.Submitted", table.Keys.Single());
        Assert.Equal("JobEvents.Submitted", FabricMessageTypes.ManifestOf(typeof(JobEvents.Submitted)));
        Assert.Equal(typeof(JobEvents.Submitted), FabricMessageTypes.TypeOf("JobEvents.Submitted"));
    }

    /// <summary>A public sealed class implementing <see cref="IFabricMessage"/>, alone in a new dynamic assembly.</summary>
    private static Type MakeMessage(string fullName, string? manifest)
    {
        var assembly = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName($"Fabric.Tests.Dynamic{Guid.NewGuid():N}"), AssemblyBuilderAccess.Run);
        var type = assembly.DefineDynamicModule("messages")
            .DefineType(fullName, TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class, typeof(object), [typeof(IFabricMessage)]);
        if (manifest is not null)
            type.SetCustomAttribute(new CustomAttributeBuilder(typeof(ManifestAttribute).GetConstructor([typeof(string)])!, [manifest]));
        type.DefineDefaultConstructor(MethodAttributes.Public);
        return type.CreateType();
    }
}
