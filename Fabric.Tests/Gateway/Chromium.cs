using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace Fabric.Tests.Gateway;

/// <summary>
/// Headless Chromium (Debian's <c>chromium</c>; <c>scripts/ensure-chromium.sh</c> installs it) run as a process for one
/// page: its DOM once the page's scripts have had <c>virtualTime</c> to run, or a screenshot. Each run has a profile
/// directory of its own, and is killed (with its helper processes) when it does not end in time.
/// </summary>
public static class Chromium
{
    /// <summary>The browser on the PATH, or null.</summary>
    public static string? Path { get; } = Find();

    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(90);

    private static string? Find()
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            foreach (var name in new[] { "chromium", "chromium-browser" })
            {
                var candidate = System.IO.Path.Combine(directory, name);
                if (File.Exists(candidate)) return candidate;
            }
        return null;
    }

    /// <summary>The page's DOM as Chromium serializes it, after <paramref name="virtualTime"/> of the page's own time.</summary>
    public static Task<string> DumpDomAsync(string url, TimeSpan virtualTime) =>
        RunAsync(["--window-size=1400,1000", $"--virtual-time-budget={(int)virtualTime.TotalMilliseconds}", "--dump-dom", url]);

    /// <summary>Writes a PNG of the page (1400×1000) to <paramref name="file"/>, after <paramref name="virtualTime"/>.</summary>
    public static async Task ScreenshotAsync(string url, string file, TimeSpan virtualTime)
    {
        File.Delete(file);
        await RunAsync(["--window-size=1400,1000", "--hide-scrollbars", $"--virtual-time-budget={(int)virtualTime.TotalMilliseconds}", $"--screenshot={file}", url]);
        if (!File.Exists(file)) throw new InvalidOperationException($"chromium wrote no screenshot to {file}");
    }

    private static async Task<string> RunAsync(string[] arguments)
    {
        var profile = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"fabric-chromium-{Guid.NewGuid():N}");
        var start = new ProcessStartInfo(Path ?? throw new InvalidOperationException("chromium is not installed"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio", $"--user-data-dir={profile}", .. arguments])
            start.ArgumentList.Add(argument);
        using var process = new Process { StartInfo = start };
        var errors = new StringBuilder();
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (errors) errors.AppendLine(e.Data); };
        try
        {
            process.Start();
            process.BeginErrorReadLine();
            var output = process.StandardOutput.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(RunTimeout);
            try { await process.WaitForExitAsync(timeout.Token); }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"chromium did not finish within {RunTimeout.TotalSeconds:0} s ({string.Join(' ', arguments)}); it said:\n{errors}");
            }
            var dom = await output;
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"chromium exited with code {process.ExitCode} ({string.Join(' ', arguments)}); it said:\n{errors}");
            return dom;
        }
        finally
        {
            try { Directory.Delete(profile, recursive: true); }
            catch (IOException) { }
        }
    }
}

/// <summary>A fact that runs only where Chromium is installed, and reports itself skipped in one line elsewhere.</summary>
internal sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (Chromium.Path is null)
            Skip = "chromium is not installed: scripts/ensure-chromium.sh (run by ./test.sh as root) installs Debian's chromium";
    }
}

/// <summary>
/// The elements of a serialized DOM with their attributes (values decoded): enough to read back what a page shows in
/// its data-* attributes, without an HTML parser.
/// </summary>
public static partial class DumpedDom
{
    public sealed record Element(string Tag, IReadOnlyDictionary<string, string> Attributes)
    {
        public string? this[string name] => Attributes.GetValueOrDefault(name);
        public bool Has(string name) => Attributes.ContainsKey(name);
        public override string ToString() => $"<{Tag} {string.Join(' ', Attributes.Select(a => $"{a.Key}=\"{a.Value}\""))}>";
    }

    [GeneratedRegex("""<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*/?>""")]
    private static partial Regex StartTag();

    [GeneratedRegex("""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")]
    private static partial Regex Attribute();

    public static IReadOnlyList<Element> Parse(string html) =>
    [
        .. StartTag().Matches(html).Select(tag => new Element(tag.Groups[1].Value.ToLowerInvariant(),
            Attribute().Matches(tag.Groups[2].Value).GroupBy(a => a.Groups[1].Value.ToLowerInvariant()).ToDictionary(g => g.Key, g =>
            {
                var a = g.First();
                var value = a.Groups[2].Success ? a.Groups[2].Value : a.Groups[3].Success ? a.Groups[3].Value : a.Groups[4].Value;
                return WebUtility.HtmlDecode(value);
            }))),
    ];
}
