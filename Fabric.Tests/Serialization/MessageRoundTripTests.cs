using System.Collections;
using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Core.Serialization;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Serialization;

/// <summary>Every Fabric message crosses the wire through the Fabric serializer and comes back the same.</summary>
public sealed class MessageRoundTripTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(FabricDevices.SystemSetup(), null, output)
{
    /// <summary>Every message type of the Fabric assemblies (they are loaded by naming one type of each).</summary>
    public static TheoryData<string> Manifests()
    {
        _ = typeof(DeviceManager);
        _ = typeof(Fabric.Node.Cli.FabricCli);
        var data = new TheoryData<string>();
        foreach (var manifest in FabricMessageTypes.All.Keys.Order()) data.Add(manifest);
        return data;
    }

    [Fact]
    public void Every_protocol_assembly_contributes_messages()
    {
        var assemblies = FabricMessageTypes.All.Values.Select(t => t.Assembly.GetName().Name).ToHashSet();

        Assert.Contains("Fabric.Core", assemblies);
        Assert.Contains("Fabric.Devices", assemblies);
        Assert.True(FabricMessageTypes.All.Count >= 40, $"only {FabricMessageTypes.All.Count} message types found");
    }

    [Theory]
    [MemberData(nameof(Manifests))]
    public void Message_round_trips_through_the_fabric_serializer(string manifest)
    {
        var type = FabricMessageTypes.All[manifest];
        var message = Sample(type, depth: 0);

        var serializer = Sys.Serialization.FindSerializerFor(message);
        var bytes = serializer.ToBinary(message);
        var wireManifest = Assert.IsAssignableFrom<SerializerWithStringManifest>(serializer).Manifest(message);
        var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, wireManifest);

        Assert.IsType<FabricMessageSerializer>(serializer);
        Assert.Equal(manifest, wireManifest);
        Assert.IsType(type, back);
        Assert.Equal(bytes, serializer.ToBinary(back));
        if (!HasReferenceFields(type)) Assert.Equal(message, back);
    }

    [Fact]
    public void Values_survive_exactly()
    {
        var fence = new FenceId(new DeviceId("node-a", 3), 77);
        var original = new ContextRequests.Submit(2, [1, 2, 3, 250], [fence, fence with { Seq = 78 }], 5);

        var back = (ContextRequests.Submit)RoundTrip(original);

        Assert.Equal((2, 5), (back.Queue, back.OutFences));
        Assert.Equal(original.Commands, back.Commands);
        Assert.Equal(original.InFences.ToArray(), back.InFences.ToArray());
        Assert.Equal("node-a/dev3/fence-78", back.InFences[1].ToString());
    }

    [Fact]
    public void Actor_refs_travel_as_paths_and_resolve_to_the_same_actor()
    {
        var original = new DeviceRequests.OpenDevice(new DeviceId("n", 0), TestActor);

        var back = (DeviceRequests.OpenDevice)RoundTrip(original);

        Assert.Equal(TestActor, back.Client);
    }

    [Fact]
    public void An_unknown_manifest_is_a_serialization_error()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerFor(new ContextRequests.Ack());

        var error = Assert.Throws<SerializationException>(() => serializer.FromBinary([0x90], "NoSuch.Message"));

        Assert.Contains("NoSuch.Message", error.Message);
    }

    private object RoundTrip(object message)
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerFor(message);
        return serializer.FromBinary(serializer.ToBinary(message), serializer.Manifest(message));
    }

    /// <summary>Whether value equality of the type stops at a reference somewhere inside (arrays compare by reference).</summary>
    private static bool HasReferenceFields(Type type) =>
        type.GetProperties().Any(p =>
            p.PropertyType == typeof(byte[]) ||
            (p.PropertyType.IsGenericType && p.PropertyType.GetGenericTypeDefinition() is var g && (g == typeof(ImmutableArray<>) || g == typeof(ImmutableList<>))) ||
            (p.PropertyType.Namespace?.StartsWith("Fabric", StringComparison.Ordinal) == true && p.PropertyType != type && HasReferenceFields(p.PropertyType)));

    /// <summary>A value of <paramref name="type"/> with every field set to something other than its default.</summary>
    private object Sample(Type type, int depth)
    {
        if (type == typeof(string)) return "text-" + depth;
        if (type == typeof(int)) return 7 + depth;
        if (type == typeof(long)) return 1L << 40;
        if (type == typeof(uint)) return 9u;
        if (type == typeof(ulong)) return ulong.MaxValue - 1;
        if (type == typeof(double)) return 0.25;
        if (type == typeof(float)) return 1.5f;
        if (type == typeof(bool)) return true;
        if (type == typeof(byte[])) return new byte[] { 1, 2, 3 };
        if (type == typeof(TimeSpan)) return TimeSpan.FromMilliseconds(1234);
        if (type == typeof(IActorRef)) return TestActor;
        if (type.IsEnum) return Enum.GetValues(type).Cast<object>().Last();
        if (Nullable.GetUnderlyingType(type) is { } inner) return Sample(inner, depth + 1);
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ImmutableArray<>))
        {
            var element = type.GetGenericArguments()[0];
            var items = Array.CreateInstance(element, 2);
            items.SetValue(Sample(element, depth + 1), 0);
            items.SetValue(Sample(element, depth + 2), 1);
            return typeof(ImmutableArray).GetMethods()
                .Single(m => m.Name == nameof(ImmutableArray.Create) && m.GetParameters() is [{ ParameterType.IsArray: true }])
                .MakeGenericMethod(element).Invoke(null, [items])!;
        }
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ImmutableList<>))
        {
            var array = Sample(typeof(ImmutableArray<>).MakeGenericType(type.GetGenericArguments()), depth);
            return typeof(ImmutableList).GetMethod(nameof(ImmutableList.CreateRange))!
                .MakeGenericMethod(type.GetGenericArguments()[0]).Invoke(null, [array])!;
        }
        if (type == typeof(Guid)) return new Guid(depth + 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
        var constructor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).FirstOrDefault()
                          ?? throw new InvalidOperationException($"{type} has no public constructor");
        var arguments = constructor.GetParameters().Select(p => Sample(p.ParameterType, depth + 1)).ToArray();
        return constructor.Invoke(arguments);
    }
}
