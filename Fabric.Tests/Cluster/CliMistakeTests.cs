using System.Diagnostics;
using Fabric.Node.Cli;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// The real <c>fabric</c> executable given common mistakes: each is one sentence on standard error and exit 2 (a usage
/// error) or 1, never a stack trace.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class CliMistakeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fabric-cli-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private async Task<(int Exit, string Errors)> RunAsync(params string[] arguments)
    {
        using var cli = FabricProcess.Start("fabric " + string.Join(' ', arguments), arguments);
        var exit = await cli.WaitForExitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"$ fabric {string.Join(' ', arguments)} → {exit}\n{cli.Output}");
        Assert.DoesNotContain("   at ", cli.Output);
        return (exit, cli.Errors);
    }

    private static void AssertOneSentence(string errors, params string[] mentions)
    {
        var lines = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length == 1, $"expected one line on standard error, got:\n{errors}");
        foreach (var mention in mentions) Assert.Contains(mention, lines[0]);
    }

    [Theory]
    [InlineData("jobs")]
    [InlineData("devices")]
    [InlineData("job")]
    [InlineData("health")]
    public async Task A_gateway_without_a_scheme_is_a_usage_error_that_says_what_was_meant(string command)
    {
        var (exit, errors) = command == "job" ? await RunAsync("job", "some-id", "--gateway", "127.0.0.1:5080") : await RunAsync(command, "--gateway", "127.0.0.1:5080");

        Assert.Equal(2, exit);
        AssertOneSentence(errors, $"fabric {command}:", "'127.0.0.1:5080'", "http://127.0.0.1:5080");
    }

    [Fact]
    public async Task Health_of_a_gateway_that_does_not_answer_is_one_sentence_naming_it_and_exit_1()
    {
        // Port 1 (tcpmux) is privileged and unused here: nothing answers there.
        var (exit, errors) = await RunAsync("health", "--gateway", "http://127.0.0.1:1");

        Assert.Equal(1, exit);
        AssertOneSentence(errors, "fabric health:", "127.0.0.1:1");
    }

    [Fact]
    public async Task Jobs_of_a_status_that_does_not_exist_is_a_usage_error()
    {
        var (exit, errors) = await RunAsync("jobs", "--status", "sleeping");

        Assert.Equal(2, exit);
        AssertOneSentence(errors, "fabric jobs:", "'sleeping'", "running, completed, failed");
    }

    [Fact]
    public async Task A_node_with_neither_certificates_nor_insecure_refuses_to_start_and_one_with_insecure_warns_on_stderr()
    {
        var ready = Path.Combine(_dir, "n1.ready.json");
        string[] node = ["node", "--name", "n1", "--port", "0", "--http-port", "0", "--ready-file", ready, "--devices", "1", "--device-memory", "16MiB",
            "--data-dir", Path.Combine(_dir, "n1"), "--sqlite", Path.Combine(_dir, "fabric.db")];
        using (var refused = FabricProcess.Start("plain n1", new Dictionary<string, string> { ["FABRIC_INSECURE"] = "0" }, node))
        {
            Assert.Equal(2, await refused.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            output.WriteLine(refused.Output);
            AssertOneSentence(refused.Errors, "fabric node:", "node n1 has no certificate", "--tls-cert", "fabric certs issue n1", "--insecure");
            Assert.False(File.Exists(ready));
        }
        using var insecure = FabricProcess.Start("insecure n1", [.. node, "--insecure"]);
        var endpoints = await insecure.WaitForReadyAsync(ready, TimeSpan.FromSeconds(90));
        await insecure.WaitForLineAsync("WARNING: fabric node n1 runs with --insecure", TimeSpan.FromSeconds(10));
        Assert.Contains($"remoting (127.0.0.1:{endpoints.Port})", insecure.Errors);
        Assert.Contains(endpoints.DataEndpoint, insecure.Errors);
        Assert.Contains("Anyone who can reach these ports can join the cluster", insecure.Errors);
    }

    [Fact]
    public async Task Check_of_an_endpoint_that_is_not_host_and_port_is_a_usage_error()
    {
        var (exit, errors) = await RunAsync("check", "--connect", "nonsense");

        Assert.Equal(2, exit);
        AssertOneSentence(errors, "fabric check:", "--connect", "'nonsense'", "host:port");
    }

    [Fact]
    public async Task Submit_of_a_directory_or_a_missing_file_is_a_usage_error_naming_it()
    {
        var missing = Path.Combine(_dir, "missing.json");

        var (directoryExit, directoryErrors) = await RunAsync("submit", _dir);
        var (missingExit, missingErrors) = await RunAsync("submit", missing);

        Assert.Equal(2, directoryExit);
        AssertOneSentence(directoryErrors, "fabric submit:", _dir, "is a directory");
        Assert.Equal(2, missingExit);
        AssertOneSentence(missingErrors, "fabric submit:", missing, "does not exist");
    }

    [Fact]
    public async Task Submit_of_a_file_that_cannot_be_read_says_why()
    {
        // Readable by name, but reading it fails (EIO at offset 0): what an unreadable file looks like even to root.
        var (exit, errors) = await RunAsync("submit", "/proc/self/mem");

        Assert.Equal(1, exit);
        AssertOneSentence(errors, "fabric submit: cannot read /proc/self/mem");
    }

    [Fact]
    public async Task Submit_of_a_file_that_is_not_a_job_names_the_file_and_the_problem()
    {
        var file = Path.Combine(_dir, "broken.json");
        await File.WriteAllTextAsync(file, "{ \"name\": ");

        var (exit, errors) = await RunAsync("submit", file, "--gateway", "http://127.0.0.1:9");

        Assert.Equal(1, exit);
        AssertOneSentence(errors, "fabric submit:", file, "EINVAL");
    }

    [Fact]
    public async Task A_node_on_every_interface_without_a_public_host_is_refused_before_it_starts()
    {
        var (exit, errors) = await RunAsync("node", "--host", "0.0.0.0", "--port", "0", "--http-port", "0",
            "--data-dir", Path.Combine(_dir, "n1"), "--sqlite", Path.Combine(_dir, "fabric.db"));

        Assert.Equal(2, exit);
        AssertOneSentence(errors, "fabric node:", "--host 0.0.0.0", "--public-host");
    }

    [Fact]
    public async Task A_node_whose_devices_cannot_be_created_fails_at_start_with_the_reason()
    {
        // More than a 47-bit address space holds: refused however the kernel overcommits.
        var (exit, errors) = await RunAsync("node", "--name", "big", "--port", "0", "--http-port", "0",
            "--device-memory", "200000GiB", "--data-dir", Path.Combine(_dir, "big"), "--sqlite", Path.Combine(_dir, "fabric.db"));

        Assert.Equal(1, exit);
        AssertOneSentence(errors, "fabric node big:", "device big/dev0 could not be created", "OutOfMemoryException", "214,748,364,800,000 bytes");
    }

    [Fact]
    public async Task Check_through_localhost_reaches_a_node_that_answers_to_127_0_0_1()
    {
        var ready = Path.Combine(_dir, "n1.ready.json");
        using var node = FabricProcess.Start("n1", "node", "--name", "n1", "--port", "0", "--http-port", "0", "--ready-file", ready,
            "--devices", "1", "--device-memory", "16MiB", "--data-dir", Path.Combine(_dir, "n1"), "--sqlite", Path.Combine(_dir, "fabric.db"));
        var port = (await node.WaitForReadyAsync(ready, TimeSpan.FromSeconds(90))).Port;

        var clock = Stopwatch.StartNew();
        var (exit, _) = await RunAsync("check", "--connect", $"localhost:{port}", "--bytes", "64KiB");

        output.WriteLine($"check through localhost took {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(0, exit);
    }
}
