using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Protocol;

namespace Fabric.Devices;

/// <summary>
/// A context's runner of device-side tasks (<see cref="TaskRequests"/>): a child of the context, started with its first
/// <see cref="TaskRequests.RunTasks"/>. It keeps what tasks leave for later ones: the mappings of the buffers they
/// named or made, and the imports (on another node, the local copies) of the exports they read. The actor is
/// <see cref="TaskRunnerActor"/>.
/// </summary>
internal static class TaskRunner
{
    /// <param name="Name">The context's name, for errors.</param>
    internal sealed record Spec(DeviceId Device, string Name, long PageSize);

    internal static Props Props(Spec spec) => Akka.Actor.Props.Create(() => new TaskRunnerActor(spec));

    /// <summary>From the context: run these tasks through <paramref name="Space"/>, the address space its device is attached to.</summary>
    internal sealed record Run(TaskRequests.RunTasks Request, AddressSpaceId Space, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>From the context: read these buffers and answer <paramref name="ReplyTo"/> once.</summary>
    internal sealed record Read(TaskRequests.ReadBuffers Request, IActorRef ReplyTo) : INoSerializationVerificationNeeded;
}
