using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Dispatch;
using Akka.Event;
using Microsoft.Extensions.Logging;

namespace Fabric.Node.Hosting;

/// <summary>
/// Akka's logger (<c>akka.loggers</c>) that hands every log event to Microsoft.Extensions.Logging: the category is
/// the class that logged (<c>Fabric.Node.Jobs.JobEntityActor</c>, <c>Akka.Cluster.SBR.SplitBrainResolver</c>, …), the
/// line is the message as written, with the actor's path only when the class is not Fabric's own. The host's console
/// logger then writes it in the one format of the node's logs (<see cref="NodeLogging"/>).
/// </summary>
internal sealed class LogBridgeActor : ActorBase, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    /// <summary>Carries the host's logger factory into the ActorSystem.</summary>
    public sealed class Bridge(ILoggerFactory factory) : Setup
    {
        public ILoggerFactory Factory { get; } = factory;
    }

    private readonly ILoggerFactory _factory = Context.System.Settings.Setup.Get<Bridge>().Value?.Factory
        ?? throw new InvalidOperationException($"{nameof(LogBridgeActor)} needs the {nameof(Bridge)} setup in the ActorSystem's setup");
    private readonly Dictionary<Type, ILogger> _loggers = [];

    protected override bool Receive(object message)
    {
        switch (message)
        {
            case InitializeLogger:
                Sender.Tell(new LoggerInitialized());
                return true;
            case LogEvent e:
                Write(e);
                return true;
            default:
                return false;
        }
    }

    private void Write(LogEvent e)
    {
        var type = e.LogClass ?? typeof(LogBridgeActor);
        if (!_loggers.TryGetValue(type, out var logger)) _loggers[type] = logger = _factory.CreateLogger(type.FullName ?? type.Name);
        var level = e.LogLevel() switch
        {
            Akka.Event.LogLevel.DebugLevel => Microsoft.Extensions.Logging.LogLevel.Debug,
            Akka.Event.LogLevel.InfoLevel => Microsoft.Extensions.Logging.LogLevel.Information,
            Akka.Event.LogLevel.WarningLevel => Microsoft.Extensions.Logging.LogLevel.Warning,
            _ => Microsoft.Extensions.Logging.LogLevel.Error,
        };
        if (!logger.IsEnabled(level)) return;
        var text = e.Message?.ToString() ?? "";
        var own = type.Namespace?.StartsWith("Fabric", StringComparison.Ordinal) == true;
        if (own) logger.Log(level, e.Cause, "{Message}", text);
        else logger.Log(level, e.Cause, "{Message} [{Source}]", text, e.LogSource);
    }
}
