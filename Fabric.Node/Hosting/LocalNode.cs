using System.Diagnostics;
using System.Runtime.InteropServices;
using Fabric.Core.Client;
using Fabric.Node.Cli;

namespace Fabric.Node.Hosting;

/// <summary>
/// One <c>fabric node</c> process of a <see cref="LocalCluster"/> on 127.0.0.1. Its ports stay the same across
/// restarts, so a restarted node is a new incarnation at the same address (as a rebooted machine would be). Its output
/// goes to <see cref="LogPath"/>.
/// </summary>
public sealed class LocalNode
{
    private readonly LocalCluster.Options _options;
    private readonly string _database;
    private readonly IReadOnlyList<string> _seeds;
    private Process? _process;

    internal LocalNode(string name, int port, int httpPort, IReadOnlyList<string> seeds, string root, string database, LocalCluster.Options options)
    {
        Name = name;
        Port = port;
        HttpPort = httpPort;
        _seeds = seeds;
        _database = database;
        _options = options;
        DataDirectory = Path.Combine(root, name);
        LogPath = Path.Combine(root, "logs", $"{name}.log");
    }

    public string Name { get; }
    public int Port { get; }
    public int HttpPort { get; }
    public string DataDirectory { get; }
    public string LogPath { get; }
    public string Endpoint => $"127.0.0.1:{Port}";
    public string Gateway => $"http://127.0.0.1:{HttpPort}";
    public string Address => $"akka.tcp://{FabricClientSystem.ClusterSystemName}@{Endpoint}";

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
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>Starts the node's process (again, after <see cref="Kill"/>).</summary>
    public void Start()
    {
        if (HasProcess) throw new InvalidOperationException($"node {Name} is already running (pid {_process!.Id})");
        Directory.CreateDirectory(Path.GetDirectoryName(LogPath)!);
        // A first start may found the cluster (the first node lists itself first); a restart only joins the others, so
        // that a restarted first node never forms a cluster of its own when the others answer late.
        var seeds = Starts == 0 ? _seeds : [.. _seeds.Where(seed => seed != Endpoint)];
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(typeof(LocalNode).Assembly.Location);
        foreach (var arg in new[]
                 {
                     "node", "--name", Name, "--port", Port.ToString(), "--seeds", string.Join(',', seeds), "--http-port", HttpPort.ToString(),
                     "--devices", _options.DevicesPerNode.ToString(), "--device-memory", _options.DeviceMemory, "--data-dir", DataDirectory,
                     "--sqlite", _database,
                 })
            start.ArgumentList.Add(arg);
        // Several node processes share this machine: workstation GC keeps each one's footprint small.
        start.Environment["DOTNET_gcServer"] = "0";
        start.Environment[NodeHost.ExitWithVariable] = Environment.ProcessId.ToString();
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start the process of node {Name}");
        Starts++;
        IsFrozen = false;
        var log = TextWriter.Synchronized(new StreamWriter(LogPath, append: true) { AutoFlush = true });
        log.WriteLine($"==== {DateTimeOffset.Now:O} start #{Starts} of {Name}, pid {process.Id}");
        var onError = _options.OnNodeError;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            log.WriteLine(e.Data);
            onError?.Invoke(Name, e.Data);
        };
        process.Exited += (_, _) => log.Dispose();
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var before = _process;
        _process = process;
        before?.Dispose();
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

    /// <summary>The node's own view, or null while its gateway does not answer.</summary>
    public async Task<Gateway.HttpGateway.Health?> HealthAsync(CancellationToken cancel)
    {
        if (!IsRunning) return null;
        using var gateway = new GatewayClient(Gateway, TimeSpan.FromSeconds(2));
        try { return await gateway.HealthAsync(cancel); }
        catch (GatewayException) { return null; }
    }

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
