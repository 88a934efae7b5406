using Akka.Actor;
using Akka.Configuration;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Xunit.Abstractions;

namespace Fabric.Tests.Client;

/// <summary>
/// A client whose device manager forwards a request to a node that then dies: the request is never answered. Told of
/// the loss by node name, the client fails it at once instead of waiting out its timeout; told the node is back, it
/// sends requests again.
/// </summary>
public sealed class NodeLossTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(FabricDevices.SystemSetup(ConfigurationFactory.ParseString("akka.loglevel = INFO")), null, output)
{
    private static readonly Address Lost = new("akka.tcp", FabricClientSystem.ClusterSystemName, "127.0.0.1", 4099);
    private static readonly DeviceId Far = new("n9", 0);

    [Fact]
    public async Task A_request_already_sent_for_a_device_of_a_node_lost_by_name_fails_with_ENODEV_at_once()
    {
        var manager = CreateTestProbe();
        await using var client = FabricClient.Connect(Sys, manager.Ref, new FabricClientOptions { RequestTimeout = TimeSpan.FromSeconds(60) });
        var open = client.OpenAsync(Far);
        await manager.ExpectMsgAsync<DeviceRequests.OpenDevice>(); // forwarded, and never answered

        client.NodeUnreachable(Lost, "it was SIGKILLed", "n9");

        var failed = await Assert.ThrowsAsync<FabricException>(() => open.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCode.ENODEV, failed.Code);
        Assert.Contains("n9", failed.Error.Message);
        Assert.Contains("SIGKILLed", failed.Error.Message);

        var again = await Assert.ThrowsAsync<FabricException>(() => client.GetDeviceInfoAsync(Far).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCode.ENODEV, again.Code);
        await manager.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200)); // refused here, not sent
    }

    [Fact]
    public async Task Once_the_node_is_back_requests_for_its_devices_are_sent_again()
    {
        var manager = CreateTestProbe();
        await using var client = FabricClient.Connect(Sys, manager.Ref, new FabricClientOptions { RequestTimeout = TimeSpan.FromSeconds(60) });
        client.NodeUnreachable(Lost, "it was SIGKILLed", "n9");
        await Assert.ThrowsAsync<FabricException>(() => client.GetDeviceInfoAsync(Far).WaitAsync(TimeSpan.FromSeconds(10)));

        client.NodeReturned(Lost, "n9");
        var info = client.GetDeviceInfoAsync(Far);

        var request = await manager.ExpectMsgAsync<DeviceRequests.GetDeviceInfo>();
        Assert.Equal(Far, request.Device);
        manager.Reply(new FabricError(ErrorCode.EBUSY, "answered by the new incarnation"));
        var answered = await Assert.ThrowsAsync<FabricException>(() => info.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCode.EBUSY, answered.Code);
    }
}
