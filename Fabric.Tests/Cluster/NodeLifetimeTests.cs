using System.Diagnostics;
using Fabric.Node;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>A node started for another process (the demo, chaos) stops by itself once that process is gone.</summary>
[Collection(ProcessCollection.Name)]
public sealed class NodeLifetimeTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_node_told_to_exit_with_a_process_stops_gracefully_when_that_process_ends()
    {
        using var owner = Process.Start(new ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;
        var data = Path.Combine(Path.GetTempPath(), $"fabric-lifetime-{Guid.NewGuid():N}");
        using var node = FabricProcess.Start("n1", new Dictionary<string, string> { [NodeHost.ExitWithVariable] = owner.Id.ToString() },
            "node", "--name", "n1", "--port", "0", "--http-port", "0", "--devices", "1",
            "--device-memory", "16MiB", "--data-dir", data, "--sqlite", Path.Combine(data, "fabric.db"));
        try
        {
            await node.WaitForLineAsync("fabric node n1:", TimeSpan.FromSeconds(60));
            Assert.False(node.HasExited);

            owner.Kill(); // the owner dies without a word, as a SIGKILLed chaos run would
            await owner.WaitForExitAsync();
            var exit = await node.WaitForExitAsync(TimeSpan.FromSeconds(60));

            output.WriteLine(node.Output);
            Assert.Equal(0, exit);
        }
        finally
        {
            if (!owner.HasExited) owner.Kill();
            try { Directory.Delete(data, recursive: true); }
            catch (IOException) { }
        }
    }
}
