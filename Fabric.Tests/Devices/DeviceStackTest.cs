using Akka.Actor;
using Akka.Configuration;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Devices;

/// <summary>
/// A node's device stack and a client in one ActorSystem. Every message is serialized on the way
/// (serialize-messages), so a Fabric message that could not cross the wire fails here.
/// </summary>
public abstract class DeviceStackTest : Akka.TestKit.Xunit2.TestKit
{
    protected const string NodeName = "t";

    private static readonly Config TestConfig = ConfigurationFactory.ParseString("""
        akka.loglevel = INFO
        akka.actor.serialize-messages = on
        """);

    protected DeviceStackTest(ITestOutputHelper output, params DeviceProfile[] profiles)
        : base(FabricDevices.SystemSetup(TestConfig), null, output)
    {
        Profiles = profiles.Length > 0 ? profiles : [SmallDevice(), SmallDevice()];
        Devices = FabricDevices.Start(Sys, NodeName, Profiles, faults: Faults);
        Client = FabricClient.Connect(Sys, Devices);
    }

    protected IReadOnlyList<DeviceProfile> Profiles { get; }

    /// <summary>Where the stack throws on purpose; nothing is armed unless a test arms it.</summary>
    protected FaultPlan Faults { get; } = new();
    protected IActorRef Devices { get; }
    protected FabricClient Client { get; }

    protected static DeviceProfile SmallDevice(int? group = null) =>
        new() { MemoryBytes = 16L << 20, Queues = 2, IommuGroup = group };

    protected static DeviceId Dev(int index) => new(NodeName, index);

    protected static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>Opens a device with an address space attached, ready to map and submit.</summary>
    protected async Task<(DeviceContext Context, AddressSpaceId Space)> OpenAttachedAsync(int device, FabricClient? client = null)
    {
        var context = await (client ?? Client).OpenAsync(Dev(device));
        var space = await context.CreateAddressSpaceAsync();
        await context.AttachAsync(space);
        return (context, space);
    }

    /// <summary>Allocates a buffer, maps it read-write at an IOVA the space picks, and writes <paramref name="data"/>.</summary>
    protected static async Task<(BufferHandle Handle, ulong Iova)> BufferWithAsync(DeviceContext context, AddressSpaceId space, byte[] data)
    {
        var handle = await context.AllocateAsync(data.Length);
        var iova = await context.MapAsync(space, handle, Access.ReadWrite);
        await context.WriteAsync(handle, 0, data);
        return (handle, iova);
    }

    protected Task<DeviceInfo> InfoAsync(int device) => Client.GetDeviceInfoAsync(Dev(device));

    /// <summary>Waits until the device's used memory is <paramref name="bytes"/> (releases can finish just after a reply).</summary>
    protected Task AwaitMemoryUsedAsync(int device, long bytes) =>
        AwaitAssertAsync(async () => Assert.Equal(bytes, (await InfoAsync(device)).MemoryUsed), Wait, TimeSpan.FromMilliseconds(20));

    protected static async Task<FabricError> FailsAsync(Func<Task> action)
    {
        var e = await Assert.ThrowsAsync<FabricException>(action);
        return e.Error;
    }

    protected static async Task<FabricError> FailsWithAsync(ErrorCode code, Func<Task> action)
    {
        var error = await FailsAsync(action);
        Assert.True(error.Code == code, $"expected {code}, got {error}");
        return error;
    }

    protected static byte[] Floats(params float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    protected static float[] AsFloats(byte[] bytes) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.AsSpan()).ToArray();
}
