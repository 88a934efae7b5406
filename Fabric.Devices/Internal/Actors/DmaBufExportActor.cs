using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.State;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="DmaBufExport"/>. DeathWatch is its reference count: the exporter and each importer
/// context are watched (<see cref="ExportRegistry{TImporter}"/> keeps the table), and when the last of them is gone
/// it stops and drops its memory reference. Importers death-watch it too: if it ends without a revoke (it failed),
/// their imports fail from then on.
/// <code>
///   Live(exporter held and/or importers) ──exporter gone, no importers──▶ stopped (memory released)
///        │
///        └──Revoke, or the exporter failed──▶ importers told ──▶ stopped (memory released)
/// </code>
/// </summary>
internal sealed class DmaBufExportActor : ReceiveActor
{
    private readonly DmaBufExport.Spec _spec;
    private readonly ExportRegistry<IActorRef> _references = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private ExportTable.Entry? _served;

    private sealed record ImporterGone(IActorRef Importer);
    private sealed record ExporterGone;

    public DmaBufExportActor(DmaBufExport.Spec spec)
    {
        _spec = spec;
        Context.WatchWith(spec.Exporter, new ExporterGone());

        Receive<DmaBufExport.Attach>(OnAttach);
        Receive<DmaBufExport.Detach>(m => Detach(m.Attachment));
        Receive<ImporterGone>(m => DetachAll(m.Importer));
        Receive<DmaBufExport.ExporterClosed>(_ => ExporterReleased());
        Receive<ExporterGone>(_ => ExporterReleased());
        Receive<DmaBufExport.Revoke>(OnRevoke);
        Receive<DmaBufExport.ExporterFailed>(m => End(m.Error));
    }

    private ExportId Id => _spec.Token.Export;

    private void OnAttach(DmaBufExport.Attach m)
    {
        if (!SecretMatches(m.Token.Secret))
        {
            m.Importer.Tell(new ContextProtocol.AttachFailed(new FabricError(ErrorCode.EPERM,
                $"{m.ImporterName} presented a token for {Id} whose secret does not match: the token is forged or corrupted"), m.ReplyTo));
            return;
        }
        var attachment = _references.Attach(m.Importer, out var first);
        if (first) Context.WatchWith(m.Importer, new ImporterGone(m.Importer));
        _spec.Faults?.Pass(FaultPlan.Sites.ExportAttach, Id.ToString());
        if (m.Importer.Path.Address.HasLocalScope)
        {
            m.Importer.Tell(new ContextProtocol.AttachedLocal(Id, Self, attachment, _spec.Block, _spec.Size, _spec.Access, m.ReplyTo));
            return;
        }
        if (_spec.DataPlane is not { } plane)
        {
            // No peer-to-peer path (a dma-buf importer without allow_peer2peer): attached, but its maps and uses fail.
            m.Importer.Tell(new ContextProtocol.AttachedRemote(null, Self, m.ReplyTo, Id, attachment, _spec.Size, _spec.Access,
                $"the node of {Id} serves no data plane, so its memory cannot be reached from another node"));
            return;
        }
        // Another node: the importer gets a credential for this node's data plane, valid while it stays attached.
        var key = RandomNumberGenerator.GetBytes(16);
        _served ??= plane.Exports.Register(Id, _spec.Block, _spec.Size, _spec.Access);
        _served.Attachments[attachment] = key;
        var remote = new RemoteMemory(Id, plane.Endpoint, attachment, key, _spec.Size, _spec.Access);
        m.Importer.Tell(new ContextProtocol.AttachedRemote(remote, Self, m.ReplyTo, Id, attachment, _spec.Size, _spec.Access));
    }

    private bool SecretMatches(string presented) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(_spec.Token.Secret));

    private void Detach(long attachment)
    {
        _served?.Attachments.TryRemove(attachment, out _);
        if (!_references.Detach(attachment, out var importer, out var last)) return;
        if (last) Context.Unwatch(importer);
        StopWhenUnreferenced();
    }

    private void DetachAll(IActorRef importer)
    {
        foreach (var attachment in _references.DetachAll(importer)) _served?.Attachments.TryRemove(attachment, out _);
        StopWhenUnreferenced();
    }

    private void ExporterReleased()
    {
        _references.ExporterReleased();
        Context.Unwatch(_spec.Exporter);
        StopWhenUnreferenced();
    }

    private void StopWhenUnreferenced()
    {
        if (!_references.Unreferenced) return;
        _log.Debug("{0} has no exporter and no importer left: releasing its memory", Id);
        Retire();
    }

    private void OnRevoke(DmaBufExport.Revoke m)
    {
        if (!m.Requester.Equals(_spec.Exporter))
        {
            m.ReplyTo.Tell(new FabricError(ErrorCode.EPERM, $"{m.RequesterName} may not revoke {Id}: it belongs to {_spec.ExporterName}"));
            return;
        }
        var importers = End(new FabricError(ErrorCode.EIO, $"{Id} was revoked by its exporter {_spec.ExporterName}"));
        _spec.Exporter.Tell(new ContextProtocol.ExportReleased(Id, _spec.Handle));
        m.ReplyTo.Tell(new Revoked(Id, importers));
    }

    /// <summary>Revokes: transfers in flight stop at their next chunk, every importer is told, and the export ends.</summary>
    private int End(FabricError error)
    {
        var importers = TellImporters(error);
        Retire();
        return importers;
    }

    /// <summary>
    /// Ended: its device routes nothing more here and stops it (memory released in <see cref="PostStop"/>); what it had
    /// routed here already is answered as for an export that no longer exists, not lost with the mailbox.
    /// </summary>
    private void Retire()
    {
        var gone = new FabricError(ErrorCode.ENOENT, $"{Id} does not exist: it was revoked or released");
        Become(() =>
        {
            Receive<DmaBufExport.Attach>(m => m.Importer.Tell(new ContextProtocol.AttachFailed(gone, m.ReplyTo)));
            Receive<DmaBufExport.Revoke>(m => m.ReplyTo.Tell(gone));
            ReceiveAny(_ => { });
        });
        Context.Parent.Tell(new DmaBufExport.Retired(Id));
    }

    /// <summary>Transfers in flight stop at their next chunk and every importer hears the export is gone; returns how many.</summary>
    private int TellImporters(FabricError error)
    {
        _served?.End(error);
        var importers = _references.Importers;
        foreach (var importer in importers) importer.Tell(new ContextProtocol.ImportRevoked(Id, error));
        return importers.Count;
    }

    /// <summary>
    /// A handler that throws ends the export (the device stops it): the request in hand fails, every importer is told
    /// (EIO naming the exception's type) and the exporter drops it, as after a revoke.
    /// </summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        try { return base.AroundReceive(receive, message); }
        catch (Exception e)
        {
            var error = new FabricError(ErrorCode.EIO, $"{Id} failed ({e.GetType().Name}) and was released");
            if (message is DmaBufExport.Attach attach) attach.Importer.Tell(new ContextProtocol.AttachFailed(error, attach.ReplyTo));
            TellImporters(error);
            _spec.Exporter.Tell(new ContextProtocol.ExportReleased(Id, _spec.Handle));
            throw;
        }
    }

    protected override void PostStop()
    {
        _spec.DataPlane?.Exports.Unregister(Id, new FabricError(ErrorCode.EIO, $"{Id} was released"));
        _spec.Block.Release();
    }
}
