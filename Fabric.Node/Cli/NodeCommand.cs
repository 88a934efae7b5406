using System.CommandLine;
using Fabric.Node.Cluster;

namespace Fabric.Node.Cli;

/// <summary><c>fabric node</c>: runs one cluster member until Ctrl-C or SIGTERM.</summary>
public static class NodeCommand
{
    private static readonly Option<string> Config = new("--config") { Description = "A JSON file of node options (keys as below, camelCase: name, port, seeds, deviceMemory, …). Flags and FABRIC_* environment variables override it." };
    private static readonly Option<string> Name = new("--name") { Description = "Node name, unique in the cluster; devices are named <name>/devN. Default n1. Env FABRIC_NAME." };
    private static readonly Option<string> Host = new("--host") { Description = "Address the Akka endpoint binds to. Default 127.0.0.1. 0.0.0.0 (every interface) needs --public-host. Env FABRIC_HOST." };
    private static readonly Option<string> PublicHost = new("--public-host") { Description = "Address other nodes and clients use to reach this node (e.g. a container's host name). Default: --host. Env FABRIC_PUBLIC_HOST." };
    private static readonly Option<int> Port = new("--port") { Description = "Akka endpoint port; 0 lets the system choose a free one (the node prints it, and writes it to --ready-file). Default 4053. Env FABRIC_PORT." };
    private static readonly Option<string> Seeds = new("--seeds") { Description = "Seed nodes, comma-separated host:port. Default: none (this node founds a cluster). Env FABRIC_SEEDS." };
    private static readonly Option<int> DataPort = new("--data-port") { Description = "TCP port of the data plane that moves P2P buffer bytes between nodes; 0 picks a free one (other nodes learn it from the cluster). Default 0. Env FABRIC_DATA_PORT." };
    private static readonly Option<string> HttpBind = new("--http-bind") { Description = "Address of the HTTP gateway. Default 127.0.0.1 (loopback only). Env FABRIC_HTTP_BIND." };
    private static readonly Option<int> HttpPort = new("--http-port") { Description = "HTTP gateway port; 0 lets the system choose a free one. Default 5080. Env FABRIC_HTTP_PORT." };
    private static readonly Option<bool> NoGateway = new("--no-gateway") { Description = "Runs the node without its HTTP gateway. Env FABRIC_NO_GATEWAY=1." };
    private static readonly Option<string> ReadyFile = new("--ready-file") { Description = "A file the node writes once it is Up in the cluster: JSON of what it bound (name, pid, address, host, port, gateway, httpPort, dataEndpoint, dataPort), written atomically and removed when the node stops. With port 0 this is how a starter learns the ports. Env FABRIC_READY_FILE." };
    private static readonly Option<string> DataDir = new("--data-dir") { Description = "Directory for the node's files (the SQLite journal). Default .fabric/<name>. Env FABRIC_DATA_DIR." };
    private static readonly Option<int> Devices = new("--devices") { Description = "Number of emulated devices. Default 2. Env FABRIC_DEVICES." };
    private static readonly Option<string> DeviceMemory = new("--device-memory") { Description = "Memory per device, e.g. 256MiB or 1GiB. Default 256MiB. Env FABRIC_DEVICE_MEMORY." };
    private static readonly Option<int> Queues = new("--queues") { Description = "Queues per device. Default 4. Env FABRIC_QUEUES." };
    private static readonly Option<string> IommuGroups = new("--iommu-groups") { Description = "IOMMU group of each device, comma-separated (e.g. 0,0,1); devices past the list get their own. Env FABRIC_IOMMU_GROUPS." };
    private static readonly Option<string> LogLevel = new("--log-level") { Description = $"The least level of the node's log lines: {string.Join(", ", Hosting.NodeLogging.Levels)}. Default information: Fabric's own events (nodes lost, jobs recovered and ended) and everyone's warnings; debug adds Akka's and ASP.NET Core's routine. Env FABRIC_LOG_LEVEL." };
    private static readonly Option<string> ApiToken = new("--api-token") { Description = "The gateway's API token (16 or more characters): submitting and cancelling need it as Authorization: Bearer <token>, and so do reads from other machines. Required with an --http-bind beyond loopback. Env FABRIC_API_TOKEN (better: a command line is visible to every user)." };
    private static readonly Option<string> Sqlite = new("--sqlite") { Description = "The SQLite journal file, shared by the nodes of one machine. Default .fabric/fabric.db. Env FABRIC_SQLITE." };
    private static readonly Option<string> TlsCert = new("--tls-cert") { Description = "This node's certificate (PEM), issued by the cluster's CA (fabric certs issue NAME). With --tls-key and --tls-ca, Akka remoting is TLS with mutual authentication: only processes with a certificate the CA signed (and did not revoke) can join or send to any actor. Env FABRIC_TLS_CERT." };
    private static readonly Option<string> TlsKey = new("--tls-key") { Description = "The private key (PEM) of --tls-cert. Env FABRIC_TLS_KEY." };
    private static readonly Option<string> TlsCa = new("--tls-ca") { Description = "The cluster's CA certificate (PEM): the only issuer this node trusts; serial numbers listed in the file 'revoked' beside it are refused. Env FABRIC_TLS_CA." };
    private static readonly Option<bool> Insecure = new("--insecure") { Description = "Runs remoting and the data plane over plain TCP without certificates: anyone who reaches the node's ports can join the cluster, send any actor a message and read exported buffers. For a laptop or a trusted network only; the node says so on stderr. Without it the node needs --tls-cert, --tls-key and --tls-ca. Env FABRIC_INSECURE=1." };
    private static Option[] Options => [Config, Name, Host, PublicHost, Port, Seeds, DataPort, HttpBind, HttpPort, NoGateway, ReadyFile, DataDir, Devices, DeviceMemory, Queues, IommuGroups, LogLevel, ApiToken, Sqlite, Postgres, TlsCert, TlsKey, TlsCa, Insecure];

    private static readonly Option<string> Postgres = new("--postgres") { Description = "PostgreSQL connection string for the journal. Default: SQLite in the data directory. Env FABRIC_POSTGRES." };

    public static Command Build()
    {
        var command = new Command("node",
            "Runs one Fabric node: its devices, the cluster membership (Split Brain Resolver keep-majority; a killed node is " +
            "unreachable after ~3 s and removed after ~8 s), the cluster-wide device registry and the HTTP gateway. " +
            "Remoting and the data plane are TLS with mutual authentication: the node takes --tls-cert/--tls-key/--tls-ca, or finds NAME.crt, NAME.key " +
            "and ca.crt in .fabric/certs by itself; plain TCP only with --insecure. " +
            "Example of a 3-node cluster on one machine: fabric certs init; fabric certs issue n1 (n2, n3 likewise); " +
            "fabric node --name n1 --port 4053 --http-port 5080; " +
            "fabric node --name n2 --port 4054 --http-port 5081 --seeds 127.0.0.1:4053; " +
            "fabric node --name n3 --port 4055 --http-port 5082 --seeds 127.0.0.1:4053.");
        foreach (var option in Options)
            command.Options.Add(option);
        command.SetAction(async (parse, cancel) =>
        {
            NodeOptions options;
            try
            {
                options = Read(parse, Environment.GetEnvironmentVariable).RequireTransport();
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"fabric node: {e.Message}");
                return 2;
            }
            return await NodeHost.RunAsync(options, Console.Out, cancel);
        });
        return command;
    }

    /// <summary>The node's options from flags, then environment, then the --config file, then defaults (<see cref="NodeConfiguration"/>); validated.</summary>
    public static NodeOptions Read(ParseResult parse, Func<string, string?> environment)
    {
        var flags = new Dictionary<string, string>();
        foreach (var option in Options.Where(o => o != Config && Given(parse, o)))
            flags[NodeConfiguration.KeyOf(option.Name)] = option switch
            {
                Option<bool> flag => parse.GetValue(flag) ? "true" : "false",
                Option<int> number => parse.GetValue(number).ToString(System.Globalization.CultureInfo.InvariantCulture),
                Option<string> text => parse.GetValue(text)!,
                _ => throw new InvalidOperationException($"{option.Name} is an option of a type the node's configuration does not read"),
            };
        return NodeConfiguration.Read(parse.GetValue(Config), environment, flags);
    }

    private static bool Given(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };
}
