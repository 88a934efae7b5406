using Microsoft.Extensions.Logging;
using AkkaLogLevel = Akka.Event.LogLevel;

namespace Fabric.Node.Hosting;

/// <summary>
/// A node's logs: Fabric's own, Akka's and ASP.NET Core's through Microsoft.Extensions.Logging, one line each on the
/// console in one format (UTC time, level, category, message). <c>--log-level</c> sets the least level shown; the
/// libraries' routine chatter (members joining, requests served) shows only from <c>debug</c> down, their warnings always.
/// </summary>
public static class NodeLogging
{
    /// <summary>The levels <c>--log-level</c> takes, in order.</summary>
    public static readonly string[] Levels = ["trace", "debug", "information", "warning", "error", "critical", "none"];

    /// <summary>A level as <c>--log-level</c> or <c>FABRIC_LOG_LEVEL</c> gives it (also <c>info</c>, <c>warn</c>) → the level; else <see cref="ArgumentException"/>.</summary>
    public static LogLevel Parse(string text, string what) => text.Trim().ToLowerInvariant() switch
    {
        "trace" => LogLevel.Trace,
        "debug" => LogLevel.Debug,
        "information" or "info" => LogLevel.Information,
        "warning" or "warn" => LogLevel.Warning,
        "error" => LogLevel.Error,
        "critical" => LogLevel.Critical,
        "none" => LogLevel.None,
        _ => throw new ArgumentException($"{what}: '{text}' is not a log level (one of {string.Join(", ", Levels)})"),
    };

    public static void Configure(ILoggingBuilder logging, LogLevel level)
    {
        logging.ClearProviders();
        logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.UseUtcTimestamp = true;
            console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
        });
        logging.SetMinimumLevel(level);
        logging.AddFilter("Akka", LibraryLevel(level));
        logging.AddFilter("Microsoft", LibraryLevel(level));
    }

    /// <summary>What Akka and ASP.NET Core show at <paramref name="level"/>: their warnings and errors, all of it from debug down.</summary>
    public static LogLevel LibraryLevel(LogLevel level) => level <= LogLevel.Debug ? level : (LogLevel)Math.Max((int)level, (int)LogLevel.Warning);

    /// <summary>The level Akka's own filter lets through to the logger factory: as low as anything could be shown.</summary>
    public static AkkaLogLevel AkkaLevel(LogLevel level) => level switch
    {
        <= LogLevel.Debug => AkkaLogLevel.DebugLevel,
        LogLevel.Information => AkkaLogLevel.InfoLevel,
        LogLevel.Warning => AkkaLogLevel.WarningLevel,
        _ => AkkaLogLevel.ErrorLevel,
    };
}
