using System.Diagnostics;
using System.Runtime.InteropServices;
using Fabric.Core.Gateway;
using Fabric.Node.Cli;

namespace Fabric.Node.Hosting;

/// <summary>
/// One <c>fabric node</c> process of a <see cref="LocalCluster"/> on 127.0.0.1. It binds whatever ports the system gives
/// it (port 0) and says which in its ready file; nobody guesses a free port for it beforehand, which another process
/// could take in between. A restart asks for the node's old Akka port, to come back as a new incarnation at the same
/// address (as a rebooted machine would); when another process holds that port by then, the node starts on a new one
/// and joins as a new member. Its output goes to <see cref="LogPath"/>.
/// </summary>
public sealed class LocalNode
{
    private readonly LocalCluster.Options _options;
    private readonly string _database;
    private Process? _process;
    private volatile bool _portTaken;

    private readonly IReadOnlyList<string> _transport;
    private readonly string? _apiToken;

    internal LocalNode(string name, string root, string database, LocalCluster.Options options, IReadOnlyList<string> transport,
        NetworkLab.Host? host = null, string? apiToken = null)
    {
        _transport = transport;
        Host = host;
        _apiToken = apiToken;
        Name = name;
        _database = database;
        _options = options;
        DataDirectory = Path.Combine(root, name);
        LogPath = Path.Combine(root, "logs", $"{name}.log");
        ReadyPath = Path.Combine(root, "ready", $"{name}.json");
    }

    public string Name { get; }

    /// <summary>The host (network namespace and address) the node runs on, or null: this machine's own network, 127.0.0.1.</summary>
    public NetworkLab.Host? Host { get; }

    /// <summary>The address the node binds and is reached at.</summary>
    public string BindAddress => Host?.Address.ToString() ?? "127.0.0.1";

    public string DataDirectory { get; }
    public string LogPath { get; }

    /// <summary>The node's <c>--ready-file</c>.</summary>
    public string ReadyPath { get; }

    /// <summary>What the node bound, as its latest process reported once Up (it stays after a kill); null before.</summary>
    public NodeEndpoints? Endpoints { get; private set; }

    /// <summary>Whether the running process has reported itself Up (a process just started again has not yet).</summary>
    public bool IsReady => IsRunning && Endpoints is { } e && e.Pid == ProcessId;

    public int Port => Known.Port;
    public int HttpPort => Known.HttpPort ?? throw new InvalidOperationException($"node {Name} has no gateway");
    public string Endpoint => Known.Endpoint;
    public string Gateway => Known.Gateway ?? throw new InvalidOperationException($"node {Name} has no gateway");
    public string Address => Known.Address;

    private NodeEndpoints Known => Endpoints ?? throw new InvalidOperationException($"node {Name} has not been started yet");

    /// <summary>How many times the process was started (1 for the first start).</summary>
    public int Starts { get; private set; }

    public bool IsRunning => HasProcess && !IsFrozen;

    private bool HasProcess
    {
        get
        {
            try { return _process is { HasExited: false }; }
            catch (InvalidOperationException) { return false; } // being replaced by a restart
        }
    }
    public bool IsFrozen { get; private set; }
    public int? ProcessId
    {
        get
        {
            try { return _process is { HasExited: false } p ? p.Id : null; }
            catch (InvalidOperationException) { return null; }
        }
    }

    /// <summary>
    /// Starts the node's process (again, after <see cref="Kill"/>) with <paramref name="seeds"/> (none: it founds a
    /// cluster) and returns once it is Up, with the address it has: the old one when it had one and that port was free.
    /// </summary>
    public async Task<StartOutcome> StartAsync(IReadOnlyList<string> seeds, CancellationToken cancel, bool newPort = false)
    {
        if (HasProcess) throw new InvalidOperationException($"node {Name} is already running (pid {_process!.Id})");
        var before = Endpoints;
        if (await LaunchAsync(newPort ? 0 : before?.Port ?? 0, seeds, cancel) is { } same) return new StartOutcome(Name, before, same, PortTaken: false);
        // The old port is held by another process: a new port, so a new member of the cluster.
        var moved = await LaunchAsync(0, seeds, cancel) ?? throw new InvalidOperationException($"node {Name} could not listen on a port of the system's choosing");
        return new StartOutcome(Name, before, moved, PortTaken: true);
    }

    /// <summary>Runs the process on <paramref name="port"/> until it is Up → what it bound; null if the port was taken.</summary>
    private async Task<NodeEndpoints?> LaunchAsync(int port, IReadOnlyList<string> seeds, CancellationToken cancel)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(LogPath)!);
        Directory.CreateDirectory(Path.GetDirectoryName(ReadyPath)!);
        File.Delete(ReadyPath);
        string[] arguments =
        [
            typeof(LocalNode).Assembly.Location,
            "node", "--name", Name, "--port", port.ToString(), "--http-port", "0", "--data-port", "0", "--ready-file", ReadyPath,
            "--devices", _options.DevicesPerNode.ToString(), "--device-memory", _options.DeviceMemory, "--data-dir", DataDirectory,
            "--sqlite", _database,
            .. Host is null ? [] : new[] { "--host", BindAddress, "--http-bind", BindAddress },
            .. _transport,
        ];
        // In a namespace: `ip netns exec NS dotnet …`, which becomes the dotnet process (its pid is the node's).
        var start = Host is { } host
            ? NetworkLab.Start(host, "dotnet", arguments)
            : new ProcessStartInfo("dotnet", arguments);
        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        if (_apiToken is not null) start.Environment[Fabric.Core.Gateway.GatewayClient.TokenVariable] = _apiToken; // not on the command line, where every user sees it
        if (seeds.Count > 0)
        {
            start.ArgumentList.Add("--seeds");
            start.ArgumentList.Add(string.Join(',', seeds));
        }
        // Several node processes share this machine: workstation GC keeps each one's footprint small.
        start.Environment["DOTNET_gcServer"] = "0";
        start.Environment[NodeHost.ExitWithVariable] = Environment.ProcessId.ToString();
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start the process of node {Name}");
        Starts++;
        IsFrozen = false;
        _portTaken = false;
        var taken = NodeHost.CannotListenOn("--port", BindAddress, port);
        var log = new NodeLog(LogPath);
        log.WriteLine($"==== {DateTimeOffset.Now:O} start #{Starts} of {Name}, pid {process.Id}, port {(port == 0 ? "chosen by the system" : port)}");
        var onError = _options.OnNodeError;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            log.WriteLine(e.Data);
            if (port != 0 && e.Data.Contains(taken, StringComparison.Ordinal)) _portTaken = true;
            else if (!e.Data.StartsWith(NodeHost.InsecureWarningStart, StringComparison.Ordinal)) onError?.Invoke(Name, e.Data); // the run chose --insecure and said so
        };
        process.Exited += (_, _) => log.Dispose();
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var previous = _process;
        _process = process;
        previous?.Dispose();

        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (NodeEndpoints.TryRead(ReadyPath) is { } ready && ready.Pid == process.Id)
            {
                Endpoints = ready;
                return ready;
            }
            if (process.HasExited)
            {
                await process.WaitForExitAsync(CancellationToken.None); // its output read to the end
                if (_portTaken) return null;
                throw new InvalidOperationException($"node {Name} exited with code {process.ExitCode} while starting; its log ({LogPath}) ends:\n{Tail()}");
            }
            if (clock.Elapsed > _options.StartTimeout)
                throw new TimeoutException($"node {Name} was not Up within {_options.StartTimeout.TotalSeconds:0} s of its start; its log ({LogPath}) ends:\n{Tail()}");
            await Task.Delay(100, cancel);
        }
    }

    /// <summary>SIGKILL: the node dies at once, with no goodbye to the cluster (as a machine losing power).</summary>
    public void Kill()
    {
        if (_process is not { HasExited: false } process) return;
        if (IsFrozen) Signal(process, Sigcont);
        process.Kill(entireProcessTree: true);
        process.WaitForExit(10_000);
        IsFrozen = false;
    }

    /// <summary>SIGTERM, as an operator's stop: the node leaves the cluster gracefully; SIGKILL if it has not exited in time.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process is not { HasExited: false } process) return;
        if (IsFrozen) Thaw();
        if (OperatingSystem.IsLinux()) Signal(process, Sigterm);
        using var wait = new CancellationTokenSource(grace);
        try { await process.WaitForExitAsync(wait.Token); }
        catch (OperationCanceledException) { Kill(); }
    }

    /// <summary>SIGSTOP: the process stops answering but keeps its connections, like a machine cut off by a partition.</summary>
    public void Freeze()
    {
        if (_process is not { HasExited: false } process) throw new InvalidOperationException($"node {Name} is not running");
        Signal(process, Sigstop);
        IsFrozen = true;
    }

    /// <summary>SIGCONT: the frozen process runs again (the partition heals).</summary>
    public void Thaw()
    {
        if (_process is not { HasExited: false } process || !IsFrozen) return;
        Signal(process, Sigcont);
        IsFrozen = false;
    }

    /// <summary>Exit code once the process has ended on its own (e.g. the cluster downed it), else null.</summary>
    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

    /// <summary>The node's own view, or null while its gateway does not answer (or its process is not Up yet).</summary>
    public async Task<Health?> HealthAsync(CancellationToken cancel)
    {
        if (!IsReady) return null;
        using var gateway = GatewayClient(TimeSpan.FromSeconds(2));
        try { return await gateway.HealthAsync(cancel); }
        catch (GatewayException) { return null; }
    }

    /// <summary>A client of the node's gateway (with the run's API token when the gateway needs one).</summary>
    public GatewayClient GatewayClient(TimeSpan timeout) => new(Gateway, timeout, _apiToken);

    /// <summary>The last <paramref name="lines"/> lines of the node's log, for a failure message.</summary>
    public string Tail(int lines = 20)
    {
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            var all = reader.ReadToEnd().Split('\n');
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException) { return ""; }
    }

    private const int Sigterm = 15;
    private const int Sigcont = 18;
    private const int Sigstop = 19;

    private static void Signal(Process process, int signal)
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("freezing a node (SIGSTOP/SIGCONT) needs Linux");
        if (NativeSignal(process.Id, signal) != 0)
            throw new InvalidOperationException($"signal {signal} to pid {process.Id} failed: errno {Marshal.GetLastPInvokeError()}");
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int NativeSignal(int pid, int signal);
}

/// <summary>How a start of a <see cref="LocalNode"/> went: where it was before (null for its first start) and is now.</summary>
/// <param name="PortTaken">It asked for its old port, another process held it, and it started on a new one.</param>
public sealed record StartOutcome(string Name, NodeEndpoints? Before, NodeEndpoints After, bool PortTaken)
{
    /// <summary>Back at the address it had: a new incarnation of the same member.</summary>
    public bool SameAddress => Before is { } b && b.Address == After.Address;

    /// <summary>One line saying which happened.</summary>
    public string Describe() =>
        Before is null ? $"{Name} is Up at {After.Endpoint} (gateway {After.Gateway ?? "none"}, data plane {After.DataEndpoint}; ports chosen by the system)"
        : SameAddress ? $"{Name} restarted at its old address {After.Endpoint}: a new incarnation of the same member"
        : PortTaken ? $"{Name}'s old port {Before.Port} was taken by another process: it restarted at {After.Endpoint} and joined as a new member"
        : $"{Name} restarted at {After.Endpoint} (it was at {Before.Endpoint}) and joined as a new member";
}

/// <summary>
/// A node's log file, written from the process's output events. Its last lines can arrive after the process has exited
/// (and the log was closed): they are dropped rather than thrown on a thread-pool thread, which would end this process.
/// </summary>
internal sealed class NodeLog(string path) : IDisposable
{
    private readonly StreamWriter _writer = new(path, append: true) { AutoFlush = true };
    private bool _closed;

    public void WriteLine(string line)
    {
        lock (_writer)
            if (!_closed) _writer.WriteLine(line);
    }

    public void Dispose()
    {
        lock (_writer)
        {
            if (_closed) return;
            _closed = true;
            _writer.Dispose();
        }
    }
}
