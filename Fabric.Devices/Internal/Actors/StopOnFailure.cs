using Akka.Actor;
using Akka.Event;

namespace Fabric.Devices;

/// <summary>
/// The device stack's supervision: a child that throws is stopped, never restarted (it owned device memory or
/// handles; a fresh instance would answer its client's handles with EINVAL). Its PostStop releases what it held,
/// like a close. The decision is logged once, and <paramref name="failed"/> runs in the parent, on its thread, before
/// the parent sees the child terminate, so it can record why.
/// </summary>
internal sealed class StopOnFailure(ILoggingAdapter log, string parent, Action<IActorRef, Exception>? failed = null)
    : OneForOneStrategy(Akka.Actor.Decider.From(Directive.Stop))
{
    protected override Directive Handle(IActorRef child, Exception exception)
    {
        // A child that could not be created: the reason is what its constructor threw, not Akka's wrappers around it.
        while (exception is ActorInitializationException or TypeLoadException or System.Reflection.TargetInvocationException &&
               exception.InnerException is { } cause)
            exception = cause;
        log.Warning("{0}: {1} failed ({2}: {3}); it is stopped, not restarted, and everything it held is released",
            parent, child.Path.Name, exception.GetType().Name, exception.Message);
        failed?.Invoke(child, exception);
        return Directive.Stop;
    }

    /// <summary>Logged in <see cref="Handle"/> already, once.</summary>
    protected override void LogFailure(IActorContext context, IActorRef child, Exception cause, Directive directive)
    {
    }
}
