using Akka.Actor;
using Akka.Configuration;
using Fabric.Core.Client;
using Fabric.Devices;

namespace Fabric.Node.Hosting;

/// <summary>
/// A node's device stack and a client in one process, with no cluster: what <c>fabric demo</c> and
/// <c>fabric bench local</c> run on.
/// </summary>
public sealed class InProcessNode : IAsyncDisposable
{
    private InProcessNode(ActorSystem system, IActorRef devices, FabricClient client)
    {
        System = system;
        Devices = devices;
        Client = client;
    }

    public ActorSystem System { get; }
    public IActorRef Devices { get; }
    public FabricClient Client { get; }

    public static InProcessNode Start(string node, IReadOnlyList<DeviceProfile> profiles, string? extraConfig = null)
    {
        var config = ConfigurationFactory.ParseString(extraConfig ?? "")
            .WithFallback(ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING"));
        var system = ActorSystem.Create("fabric", FabricDevices.SystemSetup(config));
        var devices = FabricDevices.Start(system, node, profiles);
        return new InProcessNode(system, devices, FabricClient.Connect(system, devices));
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await System.Terminate();
    }
}
