using System.Text.Json;
using System.Text.RegularExpressions;
using Fabric.Node.Cli;
using Fabric.Node.Cluster;
using Fabric.Node.Persistence;
using Fabric.Node.Security;

namespace Fabric.Tests.Node;

public sealed class NodeOptionsTests
{
    private static NodeOptions Read(string line, IDictionary<string, string>? env = null) =>
        NodeCommand.Read(FabricCli.Build().Parse(line), name => env is not null && env.TryGetValue(name, out var v) ? v : null);

    [Fact]
    public void Defaults_run_a_laptop_node_on_loopback_with_sqlite()
    {
        var options = Read("node");

        Assert.Equal(("n1", "127.0.0.1", 4053, "127.0.0.1", 5080), (options.Name, options.Host, options.Port, options.HttpBind, options.HttpPort));
        Assert.Equal(PersistenceProvider.Sqlite, options.Persistence().Provider);
        Assert.Equal(Path.Combine(".fabric", "n1"), options.DataPath);
        Assert.Equal(Path.GetFullPath(Path.Combine(".fabric", "fabric.db")), options.Persistence().SqliteFile);
        Assert.Equal(2, options.DeviceProfiles().Count);
    }

    [Fact]
    public void Flags_beat_environment_which_beats_the_config_file()
    {
        var file = Path.Combine(Path.GetTempPath(), $"fabric-node-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{ "name": "from-file", "port": 5001, "devices": 3, "deviceMemory": 1048576, "seeds": ["a:1"] }""");
        try
        {
            var env = new Dictionary<string, string> { ["FABRIC_PORT"] = "5002", ["FABRIC_QUEUES"] = "7" };

            var options = Read($"node --config {file} --name from-flag --iommu-groups 4,4", env);

            Assert.Equal("from-flag", options.Name);
            Assert.Equal(5002, options.Port);
            Assert.Equal(3, options.Devices);
            Assert.Equal(7, options.Queues);
            Assert.Equal(["a:1"], options.Seeds);
            Assert.Equal([4, 4, null], options.DeviceProfiles().Select(p => p.IommuGroup));
            Assert.All(options.DeviceProfiles(), p => Assert.Equal(1L << 20, p.MemoryBytes));
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void A_gateway_beyond_loopback_runs_with_an_api_token_from_the_flag_or_the_environment()
    {
        var flag = Read("node --http-bind 0.0.0.0 --api-token 0123456789abcdef");
        var environment = Read("node --http-bind 10.1.2.3", new Dictionary<string, string> { ["FABRIC_API_TOKEN"] = "fedcba9876543210" });

        Assert.Equal("0123456789abcdef", flag.ApiToken);
        Assert.Equal("fedcba9876543210", environment.ApiToken);
        Assert.Null(Read("node --http-bind localhost").ApiToken);
    }

    [Fact]
    public void A_config_file_takes_sizes_and_log_levels_as_the_flags_do()
    {
        var file = Path.Combine(Path.GetTempPath(), $"fabric-node-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{ "deviceMemory": "64MiB", "logLevel": "debug", "queues": 3 }""");
        try
        {
            var options = Read($"node --config {file}");
            var overridden = Read($"node --config {file} --log-level warn", new Dictionary<string, string> { ["FABRIC_LOG_LEVEL"] = "error" });
            var fromEnvironment = Read($"node --config {file}", new Dictionary<string, string> { ["FABRIC_LOG_LEVEL"] = "error" });

            Assert.Equal(64L << 20, options.DeviceMemory);
            Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, options.LogLevel);
            Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, overridden.LogLevel);
            Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Error, fromEnvironment.LogLevel);
            Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Information, Read("node").LogLevel);
        }
        finally { File.Delete(file); }
    }

    [Theory]
    [InlineData("""{ "name": "n2", "devicesMemory": "64MiB" }""", "'devicesMemory' is not a node option (the keys: name, host,")]
    [InlineData("""{ "deviceMemory": "lots" }""", "'lots' is not a size")]
    [InlineData("""{ "logLevel": "chatty" }""", "logLevel: 'chatty' is not a log level (one of trace, debug, information")]
    public void A_config_file_with_an_unknown_key_or_a_bad_value_is_refused_naming_it(string json, string named)
    {
        var file = Path.Combine(Path.GetTempPath(), $"fabric-node-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, json);
        try
        {
            var error = Assert.Throws<ArgumentException>(() => Read($"node --config {file}"));

            Assert.StartsWith($"--config {file}", error.Message);
            Assert.Contains(named, error.Message);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Each_layer_takes_lists_and_switches_its_own_way_and_the_last_layer_that_sets_a_key_wins()
    {
        var file = Path.Combine(Path.GetTempPath(), $"fabric-node-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """
            // comments are allowed
            { "Seeds": ["a:1", "b:2"], "iommuGroups": [3, 3, 5], "noGateway": true, "DEVICEMEMORY": "2MiB", "sqlite": "from-file.db" }
            """);
        try
        {
            var fromFile = Read($"node --config {file}");
            var env = new Dictionary<string, string> { ["FABRIC_SEEDS"] = "c:3, d:4", ["FABRIC_NO_GATEWAY"] = "off", ["FABRIC_SQLITE"] = "", ["FABRIC_GATEWAY"] = "not a node option" };
            var layered = Read($"node --config {file} --sqlite from-flag.db", env);

            Assert.Equal(["a:1", "b:2"], fromFile.Seeds);
            Assert.Equal([3, 3, 5], fromFile.IommuGroups);
            Assert.True(fromFile.NoGateway);
            Assert.Equal(2L << 20, fromFile.DeviceMemory);
            Assert.Equal("from-file.db", fromFile.Sqlite);
            Assert.Equal(["c:3", "d:4"], layered.Seeds);          // the environment over the file
            Assert.False(layered.NoGateway);
            Assert.Equal([3, 3, 5], layered.IommuGroups);          // set by the file alone
            Assert.Equal("from-flag.db", layered.Sqlite);          // the flag over both (an empty variable sets nothing)
        }
        finally { File.Delete(file); }
    }

    [Theory]
    [InlineData("""{ "port": "forty" }""", null, ": port: 'forty' is not a whole number")]
    [InlineData("""{ "name": { "first": "n" } }""", null, ": name: a value, not an object")]
    [InlineData("""{ "name": "n1", """, null, " is not valid node options JSON")]
    [InlineData("""{ "queues": 2 }""", "FABRIC_QUEUES=many", "FABRIC_QUEUES: 'many' is not a whole number")]
    [InlineData("""{ "queues": 2 }""", "FABRIC_DEVICE_MEMORY=lots", "FABRIC_DEVICE_MEMORY: 'lots' is not a size")]
    public void A_bad_value_is_refused_naming_the_layer_and_key_it_came_from(string json, string? variable, string named)
    {
        var file = Path.Combine(Path.GetTempPath(), $"fabric-node-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, json);
        try
        {
            var env = variable is null ? null : new Dictionary<string, string> { [variable.Split('=')[0]] = variable.Split('=')[1] };

            var error = Assert.Throws<ArgumentException>(() => Read($"node --config {file}", env));

            Assert.Contains(variable is null ? $"--config {file}{named}" : named, error.Message);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void A_config_file_that_is_not_there_is_refused_naming_it()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"fabric-node-{Guid.NewGuid():N}.json");

        var error = Assert.Throws<ArgumentException>(() => Read($"node --config {missing}"));

        Assert.Equal($"--config {missing} cannot be read: there is no such file", error.Message);
    }

    [Theory]
    [InlineData("node --log-level loud", "--log-level: 'loud' is not a log level")]
    [InlineData("node --http-bind 0.0.0.0", "give an API token (--api-token or FABRIC_API_TOKEN)")]
    [InlineData("node --api-token short", "--api-token must be at least 16 characters")]
    [InlineData("node --port 70000", "--port")]
    [InlineData("node --seeds nohost", "--seeds")]
    [InlineData("node --device-memory lots", "lots")]
    [InlineData("node --name a/b", "--name")]
    [InlineData("node --devices 0", "--devices")]
    [InlineData("node --host 0.0.0.0", "pass --public-host")]
    [InlineData("node --host 0.0.0.0 --public-host ::", "--public-host ::")]
    public void Bad_values_are_refused_with_a_sentence_naming_them(string line, string named)
    {
        var error = Assert.Throws<ArgumentException>(() => Read(line));

        Assert.Contains(named, error.Message);
    }

    [Theory]
    [InlineData("256MiB", 256L << 20)]
    [InlineData("1GiB", 1L << 30)]
    [InlineData("64k", 64L << 10)]
    [InlineData("4096", 4096L)]
    public void Sizes_read_with_binary_units(string text, long bytes) => Assert.Equal(bytes, NodeOptions.ParseSize(text));

    [Fact]
    public void A_node_without_certificates_or_insecure_is_refused_naming_both_ways()
    {
        var empty = Directory.CreateTempSubdirectory("fabric-no-certs-").FullName;
        try
        {
            var error = Assert.Throws<ArgumentException>(() => Read("node --name n7").RequireTransport(empty));
            Assert.Contains("node n7 has no certificate", error.Message);
            Assert.Contains("--tls-cert", error.Message);
            Assert.Contains("fabric certs issue n7", error.Message);
            Assert.Contains("--insecure", error.Message);

            var insecure = Read("node --name n7 --insecure").RequireTransport(empty);
            Assert.True(insecure.Insecure);
            Assert.False(insecure.UsesTls);
            Assert.True(Read("node --name n7", new Dictionary<string, string> { ["FABRIC_INSECURE"] = "1" }).RequireTransport(empty).Insecure);
        }
        finally { Directory.Delete(empty, recursive: true); }
    }

    [Fact]
    public void A_node_finds_its_certificate_in_the_certs_directory_and_refuses_insecure_with_tls()
    {
        var certificates = Directory.CreateTempSubdirectory("fabric-certs-").FullName;
        try
        {
            ClusterCertificates.InitAuthority(certificates, "unit").Dispose();
            ClusterCertificates.Issue(certificates, "n7", [], []).Dispose();
            var found = Read("node --name n7").RequireTransport(certificates);
            Assert.Equal(ClusterCertificates.CertificatePath(certificates, "n7"), found.TlsCertificate);
            Assert.Equal(ClusterCertificates.KeyPath(certificates, "n7"), found.TlsKey);
            Assert.Equal(ClusterCertificates.CertificatePath(certificates, "ca"), found.TlsCa);
            Assert.NotNull(found.LoadTls());
            // n8 has no certificate there: refused, not silently plain.
            Assert.Throws<ArgumentException>(() => Read("node --name n8").RequireTransport(certificates));

            var both = Assert.Throws<ArgumentException>(() => Read($"node --name n7 --insecure --tls-cert {found.TlsCertificate} --tls-key {found.TlsKey} --tls-ca {found.TlsCa}"));
            Assert.Contains("--insecure", both.Message);
            Assert.Contains(found.TlsCertificate!, both.Message);
        }
        finally { Directory.Delete(certificates, recursive: true); }
    }

    [Fact]
    public void Every_compose_service_command_is_accepted_by_the_cli()
    {
        var compose = File.ReadAllText(FindUp("docker-compose.yml"));
        var commands = Regex.Matches(compose, @"^\s*command:\s*(\[.*\])\s*$", RegexOptions.Multiline)
            .Select(m => JsonSerializer.Deserialize<string[]>(m.Groups[1].Value)!)
            .ToList();
        var services = Regex.Matches(compose, @"^  (\w+):\s*$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();

        Assert.Equal(3, commands.Count);
        foreach (var args in commands)
        {
            var parse = FabricCli.Build().Parse(args);
            Assert.Empty(parse.Errors);
            var options = NodeCommand.Read(parse, Token);
            Assert.Equal(PersistenceProvider.PostgreSql, options.Persistence().Provider);
            Assert.All(options.Seeds, seed => Assert.Contains(NodeOptions.ParseEndpoint(seed, "seed").Host, services));
            Assert.Contains(options.PublicHost!, services);
            // TLS: each node its own certificate, from the volume the certs service fills, and the CA every node trusts.
            Assert.Same(options, options.RequireTransport());
            Assert.Equal($"/certs/{options.Name}.crt", options.TlsCertificate);
            Assert.Equal($"/certs/{options.Name}.key", options.TlsKey);
            Assert.Equal("/certs/ca.crt", options.TlsCa);
            Assert.Contains($"for name in {string.Join(' ', commands.Select(c => NodeCommand.Read(FabricCli.Build().Parse(c), Token).Name))} client;", compose);
        }
        Assert.Contains("condition: service_completed_successfully", compose);
        Assert.Equal(3, commands.Select(c => NodeCommand.Read(FabricCli.Build().Parse(c), Token).Name).Distinct().Count());
        Assert.Contains("FABRIC_API_TOKEN: ${FABRIC_API_TOKEN:?", compose); // the gateways listen beyond loopback: a token from the user's environment
        // The same seeds everywhere, all the nodes: a restarted n1 (the first seed) finds the others and joins them.
        var seeds = commands.Select(c => NodeCommand.Read(FabricCli.Build().Parse(c), Token).Seeds.Order().ToArray()).ToList();
        Assert.All(seeds, s => Assert.Equal(seeds[0], s));
        Assert.Equal(3, seeds[0].Length);
    }

    [Fact]
    public void The_compose_nodes_keep_their_data_in_volumes_and_are_checked_by_fabric_health_and_the_image_runs_unprivileged()
    {
        var compose = File.ReadAllText(FindUp("docker-compose.yml"));
        var dockerfile = File.ReadAllLines(FindUp(Path.Combine("docker", "Dockerfile")));

        foreach (var node in new[] { "n1", "n2", "n3" }) Assert.Contains($"volumes: [\"{node}-data:/data\", \"certs:/certs:ro\"]", compose);
        Assert.Contains("test: [\"CMD\", \"dotnet\", \"fabric.dll\", \"health\"", compose);
        Assert.Contains(FabricCli.Build().Subcommands, c => c.Name == "health");
        var runtime = dockerfile.SkipWhile(l => !l.StartsWith("FROM mcr.microsoft.com/dotnet/aspnet")).ToList();
        Assert.Contains("USER app", runtime);
        Assert.Contains(runtime, l => l.StartsWith("HEALTHCHECK ") && l.Contains("\"health\""));
        // The restore is a layer before the sources are copied: a change of code does not download the packages again.
        var restore = Array.FindIndex(dockerfile, l => l.StartsWith("RUN dotnet restore"));
        var sources = Array.IndexOf(dockerfile, "COPY . .");
        Assert.InRange(restore, 0, sources - 1);
    }

    private static string? Token(string name) => name == "FABRIC_API_TOKEN" ? "a-token-of-16-chars-or-more" : null;

    private static string FindUp(string file)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, file))) return Path.Combine(dir.FullName, file);
        throw new FileNotFoundException($"{file} not found above {AppContext.BaseDirectory}");
    }
}
