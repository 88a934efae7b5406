using System.Globalization;
using Fabric.Node.Hosting;
using Microsoft.Extensions.Configuration;

namespace Fabric.Node.Cluster;

/// <summary>
/// Reads <see cref="NodeOptions"/> through Microsoft.Extensions.Configuration, in three layers: the <c>--config</c> JSON
/// file, then the <c>FABRIC_*</c> environment variables, then the command line's flags; the last layer that sets a
/// key wins, and a key no layer sets keeps its default. Every layer takes values as the flags do (sizes such as
/// <c>"64MiB"</c>, log levels by name, lists as JSON arrays or comma-separated), and a bad value is refused naming
/// where it came from: the flag, the variable, or the file and its key. A key of the file that is no option is refused
/// too (a typo would otherwise be ignored silently).
/// </summary>
public static class NodeConfiguration
{
    /// <summary>One option: its key (in the file: camelCase), its flag, and how its text sets it.</summary>
    private sealed record Setting(string Key, string Flag, Func<NodeOptions, string, string, NodeOptions> Apply, bool IsList = false)
    {
        /// <summary>The environment variable: the flag in capitals, <c>--public-host</c> → <c>FABRIC_PUBLIC_HOST</c>.</summary>
        public string Variable => "FABRIC_" + Flag[2..].Replace('-', '_').ToUpperInvariant();
    }

    private static readonly Setting[] Settings =
    [
        new("name", "--name", (o, v, _) => o with { Name = v }),
        new("host", "--host", (o, v, _) => o with { Host = v }),
        new("publicHost", "--public-host", (o, v, _) => o with { PublicHost = v }),
        new("port", "--port", (o, v, what) => o with { Port = Int(v, what) }),
        new("seeds", "--seeds", (o, v, _) => o with { Seeds = NodeOptions.List(v) }, IsList: true),
        new("dataPort", "--data-port", (o, v, what) => o with { DataPort = Int(v, what) }),
        new("httpBind", "--http-bind", (o, v, _) => o with { HttpBind = v }),
        new("httpPort", "--http-port", (o, v, what) => o with { HttpPort = Int(v, what) }),
        new("apiToken", "--api-token", (o, v, _) => o with { ApiToken = v }),
        new("noGateway", "--no-gateway", (o, v, what) => o with { NoGateway = Bool(v, what) }),
        new("readyFile", "--ready-file", (o, v, _) => o with { ReadyFile = v }),
        new("dataDirectory", "--data-dir", (o, v, _) => o with { DataDirectory = v }),
        new("devices", "--devices", (o, v, what) => o with { Devices = Int(v, what) }),
        new("deviceMemory", "--device-memory", (o, v, what) => o with { DeviceMemory = Size(v, what) }),
        new("queues", "--queues", (o, v, what) => o with { Queues = Int(v, what) }),
        new("logLevel", "--log-level", (o, v, what) => o with { LogLevel = NodeLogging.Parse(v, what) }),
        new("iommuGroups", "--iommu-groups", (o, v, what) => o with { IommuGroups = [.. NodeOptions.List(v).Select(g => Int(g, what))] }, IsList: true),
        new("postgres", "--postgres", (o, v, _) => o with { Postgres = v }),
        new("sqlite", "--sqlite", (o, v, _) => o with { Sqlite = v }),
        new("tlsCert", "--tls-cert", (o, v, _) => o with { TlsCertificate = v }),
        new("tlsKey", "--tls-key", (o, v, _) => o with { TlsKey = v }),
        new("tlsCa", "--tls-ca", (o, v, _) => o with { TlsCa = v }),
        new("insecure", "--insecure", (o, v, what) => o with { Insecure = Bool(v, what) }),
    ];

    /// <summary>The keys a <c>--config</c> file may have.</summary>
    public static IEnumerable<string> ConfigKeys => Settings.Select(s => s.Key);

    /// <summary>The key of the option whose flag is <paramref name="flag"/> (<c>--data-dir</c> → <c>dataDirectory</c>).</summary>
    public static string KeyOf(string flag) => Settings.Single(s => s.Flag == flag).Key;

    /// <summary>
    /// The options from <paramref name="configFile"/> (none when null), the environment (<paramref name="environment"/>
    /// answers a variable's value, null when unset; an empty value counts as unset) and <paramref name="flags"/> (key →
    /// the text given), layered in that order; validated. Anything wrong → <see cref="ArgumentException"/> with a sentence.
    /// </summary>
    public static NodeOptions Read(string? configFile, Func<string, string?> environment, IReadOnlyDictionary<string, string> flags)
    {
        var file = configFile is null ? null : ReadFile(configFile);
        var variables = Settings.Select(s => (s.Key, Value: environment(s.Variable)))
            .Where(e => !string.IsNullOrEmpty(e.Value)).ToDictionary(e => e.Key, e => e.Value);
        var fromEnvironment = new ConfigurationBuilder().AddInMemoryCollection(variables).Build();
        var fromFlags = new ConfigurationBuilder().AddInMemoryCollection(flags.Select(f => new KeyValuePair<string, string?>(f.Key, f.Value))).Build();
        var layers = new ConfigurationBuilder();
        if (file is not null) layers.AddConfiguration(file);
        var merged = layers.AddConfiguration(fromEnvironment).AddConfiguration(fromFlags).Build();

        var options = new NodeOptions();
        foreach (var setting in Settings)
        {
            var section = merged.GetSection(setting.Key);
            if (!section.Exists()) continue;
            // Named as the layer that set it says it: the flag, the variable, or the file's key.
            var what = fromFlags.GetSection(setting.Key).Exists() ? setting.Flag
                : fromEnvironment.GetSection(setting.Key).Exists() ? setting.Variable
                : $"--config {configFile}: {setting.Key}";
            var text = setting.IsList && section.Value is null
                ? string.Join(',', section.GetChildren().OrderBy(c => int.TryParse(c.Key, out var i) ? i : int.MaxValue).Select(c => c.Value))
                : section.Value;
            if (text is null)
                throw new ArgumentException($"{what}: a value, not an object");
            try { options = setting.Apply(options, text, what); }
            catch (ArgumentException e) when (what.StartsWith("--config", StringComparison.Ordinal) && !e.Message.StartsWith(what, StringComparison.Ordinal))
            {
                throw new ArgumentException($"{what}: {e.Message}");
            }
        }
        return options.Validate();
    }

    /// <summary>The JSON file as a configuration; a file that cannot be read, is not JSON, or has a key that is no option → a sentence.</summary>
    private static IConfigurationRoot ReadFile(string path)
    {
        IConfigurationRoot file;
        try
        {
            file = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(path), optional: false, reloadOnChange: false).Build();
        }
        catch (FileNotFoundException)
        {
            throw new ArgumentException($"--config {path} cannot be read: there is no such file");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"--config {path} cannot be read: {e.Message}");
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"--config {path} is not valid node options JSON: {e.InnerException?.Message ?? e.Message}");
        }
        catch (InvalidDataException e)
        {
            throw new ArgumentException($"--config {path} is not valid node options JSON: {e.Message}");
        }
        if (!file.GetChildren().Any() && new FileInfo(path).Length == 0) throw new ArgumentException($"--config {path} is empty");
        foreach (var key in file.GetChildren().Select(c => c.Key))
            if (!Settings.Any(s => s.Key.Equals(key, StringComparison.OrdinalIgnoreCase)))
                throw new ArgumentException($"--config {path}: '{key}' is not a node option (the keys: {string.Join(", ", ConfigKeys)})");
        return file;
    }

    private static int Int(string text, string what) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : throw new ArgumentException($"{what}: '{text}' is not a whole number");

    private static long Size(string text, string what)
    {
        try { return NodeOptions.ParseSize(text); }
        catch (ArgumentException e) { throw new ArgumentException($"{what}: {e.Message}"); }
    }

    private static bool Bool(string text, string what) => text.Trim().ToLowerInvariant() switch
    {
        "1" or "true" or "on" or "yes" => true,
        "0" or "false" or "off" or "no" or "" => false,
        _ => throw new ArgumentException($"{what}: '{text}' is not on or off"),
    };
}
