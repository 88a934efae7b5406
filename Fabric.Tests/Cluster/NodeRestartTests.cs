using System.Diagnostics;
using Fabric.Core.Gateway;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// A node SIGKILLed and started again at its address, over and over, as a crashing service under systemd is: every new
/// incarnation joins, and the others list its devices again. (Akka's classic remoting could leave a seed's connection
/// from the newcomer unread when it raced the seed's own reconnection; see Fabric.Node's AssociationResetActor.)
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class NodeRestartTests(ClusterFixture cluster, ITestOutputHelper output) : ClusterTest<ClusterFixture>(cluster, output)
{
    private const int Restarts = 6;

    [Fact]
    public async Task A_node_killed_and_restarted_at_its_address_six_times_in_a_row_rejoins_every_time_with_its_devices()
    {
        var port = Cluster["n2"].Port;
        var pids = new HashSet<int> { Cluster["n2"].Process.Id };
        for (var restart = 1; restart <= Restarts; restart++)
        {
            Cluster["n2"].Process.Kill();
            var clock = Stopwatch.StartNew();
            var back = await Cluster.RestartAsync("n2");
            Assert.Equal(port, back.Port);
            Assert.True(pids.Add(back.Process.Id), $"restart {restart}: a new process");
            foreach (var reader in new[] { "n1", "n3" })
            {
                var devices = await Cluster.AwaitDevicesAsync(ds => ds.Count(d => d.Id.Node == "n2") == 2, TimeSpan.FromSeconds(30), reader);
                Assert.Equal(6, devices.Length);
                using var gateway = new GatewayClient(Cluster[reader].Gateway);
                // The newcomer knows itself Up before the others' gossip says so.
                var health = await UntilAsync(() => gateway.HealthAsync(CancellationToken.None), h => h.UpMembers == 3, TimeSpan.FromSeconds(30),
                    $"restart {restart}: {reader} sees 3 members Up");
                Assert.Equal(3, health.Members);
            }
            Output.WriteLine($"restart {restart}: n2 Up again at port {back.Port} and listed by n1 and n3 after {clock.Elapsed.TotalSeconds:0.0} s");
        }
    }
}
