using System.Diagnostics;
using System.Text;
using Fabric.Node.Hosting;

namespace Fabric.Tests.Cluster;

/// <summary>
/// A real <c>fabric</c> process started from the build output next to the tests (<c>dotnet fabric.dll …</c>), its
/// output captured line by line. Disposing it kills it (SIGKILL) if it still runs.
/// </summary>
public sealed class FabricProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _errors = new();
    private readonly List<(string Text, TaskCompletionSource Seen)> _expected = [];

    private FabricProcess(Process process, string label)
    {
        _process = process;
        Label = label;
    }

    public string Label { get; }
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>Everything printed, standard output and standard error interleaved.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>What was printed on standard error only.</summary>
    public string Errors
    {
        get { lock (_output) return _errors.ToString(); }
    }

    public static FabricProcess Start(string label, params string[] arguments) => Start(label, new Dictionary<string, string>(), arguments);

    public static FabricProcess Start(string label, IReadOnlyDictionary<string, string> environment, params string[] arguments) =>
        Start(label, environment, null, arguments);

    /// <summary>Starts fabric inside network namespace <paramref name="netns"/> (<c>ip netns exec</c>, which becomes the process).</summary>
    public static FabricProcess StartInNamespace(string label, string netns, params string[] arguments) =>
        Start(label, new Dictionary<string, string>(), netns, arguments);

    private static FabricProcess Start(string label, IReadOnlyDictionary<string, string> environment, string? netns, string[] arguments)
    {
        var start = new ProcessStartInfo(netns is null ? "dotnet" : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        if (netns is not null) foreach (var argument in new[] { "netns", "exec", netns, "dotnet" }) start.ArgumentList.Add(argument);
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "fabric.dll"));
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        if (NeedsTransport(arguments) && !environment.ContainsKey("FABRIC_INSECURE")) start.ArgumentList.Add("--insecure");
        start.Environment["DOTNET_gcServer"] = "0";
        start.Environment["DOTNET_GCHeapHardLimit"] = "0x30000000"; // 768 MiB: several processes share 24 GiB and 2 cores
        foreach (var (name, value) in environment) start.Environment[name] = value;
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var fabric = new FabricProcess(process, label);
        process.OutputDataReceived += (_, e) => fabric.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => fabric.OnLine(e.Data, error: true);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return fabric;
    }

    /// <summary>
    /// Whether a command would have to choose its transport: <c>fabric node</c> and <c>fabric check</c> refuse to run
    /// with neither certificates nor --insecure, and these tests run them plain unless they give certificates (TlsTests)
    /// or test that refusal (they then give FABRIC_INSECURE=0, which this leaves alone).
    /// </summary>
    private static bool NeedsTransport(string[] arguments) =>
        arguments is ["node" or "check", ..] && !arguments.Contains("--tls-cert") && !arguments.Contains("--insecure") && !arguments.Contains("--help");

    private void OnLine(string? line, bool error = false)
    {
        if (line is null) return;
        lock (_output)
        {
            _output.AppendLine(line);
            if (error) _errors.AppendLine(line);
            foreach (var (text, seen) in _expected)
                if (line.Contains(text, StringComparison.Ordinal)) seen.TrySetResult();
        }
    }

    /// <summary>Waits until a line containing <paramref name="text"/> is printed; fails with the output so far if not in time.</summary>
    public async Task WaitForLineAsync(string text, TimeSpan timeout)
    {
        TaskCompletionSource seen = new(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            if (_output.ToString().Contains(text, StringComparison.Ordinal)) return;
            _expected.Add((text, seen));
        }
        var finished = await Task.WhenAny(seen.Task, Task.Delay(timeout), _process.WaitForExitAsync());
        if (finished != seen.Task && !seen.Task.IsCompleted)
            throw new TimeoutException($"{Label} did not print '{text}' within {timeout.TotalSeconds:0} s (exited: {_process.HasExited}). Output:\n{Output}");
    }

    /// <summary>
    /// Waits until this process (a <c>fabric node … --ready-file</c>) has written <paramref name="readyFile"/> → the
    /// endpoints it bound; fails with the output so far if it exits or is not Up in time.
    /// </summary>
    public async Task<NodeEndpoints> WaitForReadyAsync(string readyFile, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (NodeEndpoints.TryRead(readyFile) is { } ready && ready.Pid == Id) return ready;
            if (_process.HasExited) throw new InvalidOperationException($"{Label} exited with code {_process.ExitCode} before it was Up. Output:\n{Output}");
            if (clock.Elapsed > timeout) throw new TimeoutException($"{Label} did not write {readyFile} within {timeout.TotalSeconds:0} s. Output:\n{Output}");
            await Task.Delay(100);
        }
    }

    /// <summary>Waits for the process to end; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cancel.Token); }
        catch (OperationCanceledException) { throw new TimeoutException($"{Label} did not exit within {timeout.TotalSeconds:0} s. Output:\n{Output}"); }
        _process.WaitForExit(); // drains the output
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, as <c>kill PID</c> or a container stop sends: the process shuts down gracefully (a node leaves the cluster).</summary>
    public void Terminate()
    {
        if (!_process.HasExited && SendSignal(_process.Id, 15) != 0)
            throw new InvalidOperationException($"{Label}: kill(SIGTERM) failed with errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    /// <summary>SIGKILL: no shutdown hook, no goodbye to the cluster.</summary>
    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true); // with the node processes it started, if any
    }

    public void Dispose()
    {
        try { Kill(); }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
