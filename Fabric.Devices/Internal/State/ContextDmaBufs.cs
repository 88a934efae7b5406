using Akka.Actor;
using Fabric.Core;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices.Internal.State;

/// <summary>
/// The dma-buf side of a context, run on its actor's thread: exports it makes and imports it attaches, recorded in
/// its <see cref="BufferTable"/>. Every method answers the client itself; the actor only routes the messages here.
/// </summary>
internal sealed class ContextDmaBufs(ContextProtocol.Spec spec, string name, BufferTable buffers, IActorRef self)
{
    /// <summary>The context actor (also for callbacks that run outside its message handling, such as its supervisor's).</summary>
    public IActorRef Self => self;

    public void Export(Export m, IActorRef sender)
    {
        if (buffers.TryBeginExport(m.Handle, m.Access, out var buffer, out var error))
            spec.DeviceActor.Tell(new Device.CreateExport(buffer, spec.Id, self, m.Access, sender));
        else sender.Tell(error!);
    }

    public void Created(Device.ExportCreated m)
    {
        if (buffers.ExportAdded(m.Token.Export, m.Export, m.Handle))
        {
            m.ReplyTo.Tell(new Exported(m.Token, m.Size));
            return;
        }
        // Freed while the export was being made: the export still holds the memory, as a dma-buf would.
        m.Export.Tell(new DmaBufExport.ExporterClosed());
        m.ReplyTo.Tell(new FabricError(ErrorCode.EINVAL, $"{name}: {m.Handle} was freed while it was being exported"));
    }

    /// <summary>Its own exports go to the export; any other id to the manager, which answers for exports it cannot find.</summary>
    public void Revoke(Revoke m, IActorRef sender)
    {
        var target = buffers.Exports.TryGetValue(m.Export, out var export) ? export.Actor : spec.Manager;
        target.Tell(new DmaBufExport.Revoke(m.Export, self, name, sender));
    }

    /// <summary>An import becomes a handle: refused at once (ENOSPC) when the context holds as many as its limit.</summary>
    public void Import(Import m, IActorRef sender)
    {
        if (buffers.CheckRoom() is { } full) sender.Tell(full);
        else spec.Manager.Tell(new DmaBufExport.Attach(m.Token, self, name, sender));
    }

    /// <summary>An import is attached; returns the export actor to death-watch.</summary>
    public IActorRef Attached(ContextProtocol.AttachedLocal m) =>
        Imported(m.ReplyTo, m.ExportActor, buffers.AddImport(new(m.Export, m.ExportActor, m.Attachment), m.Size, m.Access, m.Block, null));

    /// <summary>An import of another node's export; without a data plane on either side it is attached without a path (EPERM on use).</summary>
    public IActorRef Attached(ContextProtocol.AttachedRemote m)
    {
        var unreachable = m.Unreachable ?? (spec.DataPlane is null ? $"{spec.Device}'s node has no data plane to reach {m.Export} on another node" : null);
        var source = new BufferView.ImportSource(m.Export, m.ExportActor, m.Attachment);
        return Imported(m.ReplyTo, m.ExportActor, buffers.AddImport(source, m.Size, m.Access, null, unreachable is null ? m.Remote : null, unreachable));
    }

    private IActorRef Imported(IActorRef replyTo, IActorRef export, BufferView buffer)
    {
        spec.Imports.Added();
        replyTo.Tell(new Imported(buffer.Handle, buffer.Size, buffer.Access));
        return export;
    }

    /// <summary>An export this context imported ended without a revoke (its node was lost, or it failed): its imports fail from now on.</summary>
    public void ExportEnded(Terminated m) => buffers.Revoke(s => s.ExportActor.Equals(m.ActorRef), m.AddressTerminated
        ? new FabricError(ErrorCode.ENODEV, $"the export is gone: its node {m.ActorRef.Path.Address} was lost")
        : new FabricError(ErrorCode.EIO, "the export ended"));

    /// <summary>The context stops: each export it holds is dropped, or revoked when the context failed.</summary>
    public void Release(FabricError? failure)
    {
        foreach (var (export, _) in buffers.Exports.Values)
            export.Tell(failure is null ? new DmaBufExport.ExporterClosed()
                : new DmaBufExport.ExporterFailed(failure with { Message = $"{failure.Message}; its exports are revoked" }));
    }
}
