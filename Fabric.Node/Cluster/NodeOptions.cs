using System.Globalization;
using Fabric.Devices;
using Fabric.Node.Persistence;
using Fabric.Node.Security;

namespace Fabric.Node.Cluster;

/// <summary>
/// Everything a node is started with. Each value comes from (first that is set): a command-line flag, an environment
/// variable <c>FABRIC_*</c>, the JSON file given by <c>--config</c> (layered by <see cref="NodeConfiguration"/>), or the
/// default here — defaults that run a single-node fabric on a laptop.
/// </summary>
public sealed record NodeOptions
{
    /// <summary>The node's name; devices are named <c>name/devN</c>. Unique in the cluster.</summary>
    public string Name { get; init; } = "n1";

    /// <summary>The address the Akka endpoint binds to.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The address other nodes and clients use to reach this one (defaults to <see cref="Host"/>).</summary>
    public string? PublicHost { get; init; }

    /// <summary>The Akka endpoint's TCP port; 0 lets the system choose a free one (the node reports which).</summary>
    public int Port { get; init; } = 4053;

    /// <summary>Seed nodes as <c>host:port</c>; none means this node founds a cluster of its own.</summary>
    public IReadOnlyList<string> Seeds { get; init; } = [];

    /// <summary>The data plane's TCP port (bulk bytes of P2P imports between nodes); 0 picks a free one. It binds to
    /// <see cref="Host"/>, and other nodes learn it from the cluster.</summary>
    public int DataPort { get; init; }

    /// <summary>The address the HTTP gateway binds to: loopback unless told otherwise.</summary>
    public string HttpBind { get; init; } = "127.0.0.1";

    /// <summary>The HTTP gateway's port; 0 lets the system choose a free one (the node reports which).</summary>
    public int HttpPort { get; init; } = 5080;

    /// <summary>
    /// The gateway's API token: changes (submit, cancel) need it as <c>Authorization: Bearer</c>, and so do reads from
    /// other machines (<see cref="Gateway.GatewayAuth"/>). Required when the gateway listens beyond loopback.
    /// </summary>
    public string? ApiToken { get; init; }

    /// <summary>Runs the node without its HTTP gateway.</summary>
    public bool NoGateway { get; init; }

    /// <summary>
    /// A file the node writes once it is Up in the cluster: its <see cref="Hosting.NodeEndpoints"/> as JSON (the ports
    /// it actually bound), written atomically; removed when the node stops. None when null.
    /// </summary>
    public string? ReadyFile { get; init; }

    /// <summary>Where the node keeps its files (the SQLite journal among them); default <c>.fabric/&lt;name&gt;</c>.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>How many devices the node hosts.</summary>
    public int Devices { get; init; } = 2;

    /// <summary>Memory of each device, in bytes; in a config file a number of bytes or a size as <c>--device-memory</c> takes it (<c>"64MiB"</c>).</summary>
    public long DeviceMemory { get; init; } = DeviceProfile.DefaultMemoryBytes;

    /// <summary>Queues per device.</summary>
    public int Queues { get; init; } = 4;

    /// <summary>The least level of the node's logs (see <see cref="Hosting.NodeLogging"/>); in a config file, a name such as <c>"debug"</c>.</summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; init; } = Microsoft.Extensions.Logging.LogLevel.Information;

    /// <summary>IOMMU group of each device, in order; devices past the list get groups of their own.</summary>
    public IReadOnlyList<int> IommuGroups { get; init; } = [];

    /// <summary>A PostgreSQL connection string; null keeps the journal in the SQLite file <see cref="Sqlite"/>.</summary>
    public string? Postgres { get; init; }

    /// <summary>
    /// The SQLite journal file, shared by the nodes of one machine so a job entity recovers on any of them; default
    /// <c>.fabric/fabric.db</c>.
    /// </summary>
    public string? Sqlite { get; init; }

    /// <summary>This node's certificate (PEM) for TLS on Akka remoting; with <see cref="TlsKey"/> and <see cref="TlsCa"/>, or none of the three.</summary>
    public string? TlsCertificate { get; init; }

    /// <summary>The private key (PEM) of <see cref="TlsCertificate"/>.</summary>
    public string? TlsKey { get; init; }

    /// <summary>The cluster's CA certificate (PEM): the one issuer trusted (a <c>revoked</c> file beside it lists refused serials).</summary>
    public string? TlsCa { get; init; }

    /// <summary>Whether remoting is TLS (all three files given).</summary>
    public bool UsesTls => TlsCertificate is not null;

    /// <summary>
    /// Plain TCP on remoting and the data plane, asked for on purpose (<c>--insecure</c>): whoever reaches the ports can
    /// join, send any actor a message and read exports. <c>fabric node</c> refuses to start with neither this nor TLS.
    /// </summary>
    public bool Insecure { get; init; }

    /// <summary>
    /// What <c>fabric node</c> demands beyond <see cref="Validate"/>: TLS, or plain TCP asked for with --insecure, so a
    /// cluster is never open by accident. Given neither, the node takes NAME.crt, NAME.key and ca.crt from
    /// <paramref name="certificates"/> (default <see cref="ClusterCertificates.DefaultDirectory"/>, where
    /// <c>fabric certs</c> writes them) when all three are there. A node built in code (a test's in-process node) need not say.
    /// </summary>
    public NodeOptions RequireTransport(string certificates = ClusterCertificates.DefaultDirectory)
    {
        if (UsesTls || Insecure) return this;
        if (ClusterCertificates.Find(certificates, Name) is var (certificate, key, ca))
            return this with { TlsCertificate = certificate, TlsKey = key, TlsCa = ca };
        throw new ArgumentException($"node {Name} has no certificate: give --tls-cert, --tls-key and --tls-ca (or FABRIC_TLS_CERT, FABRIC_TLS_KEY, FABRIC_TLS_CA; " +
                                    $"fabric certs init, then fabric certs issue {Name}, writes them to {certificates}, where the node finds them by itself), " +
                                    "or --insecure for plain TCP that anyone reaching its ports can join (a laptop, a trusted network)");
    }

    /// <summary>The node's TLS, loaded from its files; null without TLS. A bad file → <see cref="ArgumentException"/> naming it.</summary>
    public Fabric.Core.Security.ClusterTls? LoadTls() => UsesTls ? Fabric.Core.Security.ClusterTls.Load(TlsCertificate!, TlsKey!, TlsCa!) : null;

    public string SqlitePath => Sqlite ?? Path.Combine(".fabric", "fabric.db");

    public string AdvertisedHost => PublicHost ?? Host;
    public string DataPath => DataDirectory ?? Path.Combine(".fabric", Name);

    /// <summary>Where the node's journal lives: PostgreSQL when a connection string is given, else the shared SQLite file.</summary>
    public PersistenceOptions Persistence() =>
        Postgres is { } connection
            ? PersistenceOptions.PostgreSql(connection)
            : PersistenceOptions.Sqlite(Path.GetDirectoryName(Path.GetFullPath(SqlitePath))!) with { SqliteFileName = Path.GetFileName(SqlitePath) };

    public IReadOnlyList<DeviceProfile> DeviceProfiles() =>
        [.. Enumerable.Range(0, Devices).Select(i => new DeviceProfile
        {
            MemoryBytes = DeviceMemory,
            Queues = Queues,
            IommuGroup = i < IommuGroups.Count ? IommuGroups[i] : null,
        }.Validate())];

    /// <summary>Checks every field; throws <see cref="ArgumentException"/> with a sentence naming the field.</summary>
    public NodeOptions Validate()
    {
        if (string.IsNullOrWhiteSpace(Name) || Name.Contains('/') || Name.Contains(' '))
            throw new ArgumentException($"--name must be a non-empty word without '/' or spaces, not '{Name}'");
        if (IsWildcard(AdvertisedHost))
            throw new ArgumentException(PublicHost is null
                ? $"--host {Host} listens on every interface, but other nodes and clients need one address to reach this node: pass --public-host " +
                  "(this machine's address or DNS name, as the others reach it)"
                : $"--public-host {PublicHost} is not an address others can reach this node at: give this machine's address or DNS name");
        if (!NoGateway && ApiToken is null && !IsLoopback(HttpBind))
            throw new ArgumentException($"--http-bind {HttpBind} opens the gateway beyond this machine, where anyone reaching it could submit and cancel jobs: " +
                                        $"give an API token (--api-token or {Gateway.GatewayAuth.TokenVariable}), or bind 127.0.0.1");
        if (ApiToken is { } apiToken && (apiToken.Length < 16 || apiToken.Any(char.IsWhiteSpace)))
            throw new ArgumentException("--api-token must be at least 16 characters without spaces (e.g. openssl rand -hex 16, or any long random word)");
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port must be 0..65535, not {Port}");
        if (HttpPort is < 0 or > 65535) throw new ArgumentException($"--http-port must be 0..65535, not {HttpPort}");
        if (DataPort is < 0 or > 65535) throw new ArgumentException($"--data-port must be 0..65535, not {DataPort}");
        if (ReadyFile is { } ready && string.IsNullOrWhiteSpace(ready)) throw new ArgumentException("--ready-file must name a file");
        if (Devices is < 1 or > 64) throw new ArgumentException($"--devices must be 1..64, not {Devices}");
        foreach (var seed in Seeds) ParseEndpoint(seed, "--seeds");
        var tls = new[] { ("--tls-cert", TlsCertificate), ("--tls-key", TlsKey), ("--tls-ca", TlsCa) };
        if (tls.Any(t => t.Item2 is not null) && tls.FirstOrDefault(t => t.Item2 is null) is { Item1: { } missing })
            throw new ArgumentException($"TLS needs --tls-cert, --tls-key and --tls-ca together: {missing} is missing (fabric certs issue {Name} makes the first two)");
        if (UsesTls && Insecure)
            throw new ArgumentException($"--insecure asks for plain TCP, but --tls-cert {TlsCertificate} asks for TLS: give one of them");
        _ = DeviceProfiles();
        Persistence().Validate();
        return this;
    }

    /// <summary>Whether <paramref name="host"/> is this machine only: localhost or a loopback address.</summary>
    private static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var address) && System.Net.IPAddress.IsLoopback(address));

    /// <summary>An address that means "every interface" when bound to, and nothing when connected to.</summary>
    private static bool IsWildcard(string host) => host.Trim('[', ']') is "0.0.0.0" or "::" or "*" or "+" or "";

    /// <summary>Parses <c>host:port</c>; throws <see cref="ArgumentException"/> naming <paramref name="what"/>.</summary>
    public static (string Host, int Port) ParseEndpoint(string text, string what)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text[(colon + 1)..], out var port) || port is < 1 or > 65535)
            throw new ArgumentException($"{what}: '{text}' is not host:port");
        return (text[..colon], port);
    }

    /// <summary>Parses a size such as <c>256MiB</c>, <c>1GiB</c>, <c>64k</c> or plain bytes.</summary>
    public static long ParseSize(string text)
    {
        var t = text.Trim();
        var units = new (string Suffix, long Factor)[]
        {
            ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10), ("G", 1L << 30), ("M", 1L << 20), ("K", 1L << 10), ("B", 1),
        };
        foreach (var (suffix, factor) in units)
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) &&
                long.TryParse(t[..^suffix.Length].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                return checked(n * factor);
        if (long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var bytes)) return bytes;
        throw new ArgumentException($"'{text}' is not a size (examples: 268435456, 256MiB, 1GiB)");
    }

    public static IReadOnlyList<string> List(string text) =>
        [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
}
