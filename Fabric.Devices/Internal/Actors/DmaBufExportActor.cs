using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Event;
using Fabric.Core;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices;

/// <summary>
/// The actor behind <see cref="DmaBufExport"/>. DeathWatch is its reference count: the exporter and each importer
/// context are watched, and when the last of them is gone it stops and drops its memory reference.
/// <code>
///   Live(exporter held and/or importers) ──exporter gone, no importers──▶ stopped (memory released)
///        │
///        └──Revoke──▶ importers told ──▶ stopped (memory released)
/// </code>
/// </summary>
internal sealed class DmaBufExportActor : ReceiveActor
{
    private readonly DmaBufExport.Spec _spec;
    private readonly Dictionary<long, IActorRef> _attachments = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _exporterHolds = true;
    private Fabric.Devices.DataPlane.ExportTable.Entry? _served;
    private long _nextAttachment;

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
        var local = m.Importer.Path.Address.HasLocalScope;
        if (!local && _spec.DataPlane is null)
        {
            m.Importer.Tell(new ContextProtocol.AttachFailed(new FabricError(ErrorCode.EINVAL,
                $"{m.ImporterName} is on another node, and the node of {Id} has no data plane to serve it"), m.ReplyTo));
            return;
        }
        var attachment = ++_nextAttachment;
        if (!_attachments.ContainsValue(m.Importer)) Context.WatchWith(m.Importer, new ImporterGone(m.Importer));
        _attachments[attachment] = m.Importer;
        if (local)
        {
            m.Importer.Tell(new ContextProtocol.AttachedLocal(Id, Self, attachment, _spec.Block, _spec.Size, _spec.Access, m.ReplyTo));
            return;
        }
        // Another node: the importer gets a credential for this node's data plane, valid while it stays attached.
        var key = RandomNumberGenerator.GetBytes(16);
        _served ??= _spec.DataPlane!.Exports.Register(Id, _spec.Block, _spec.Size, _spec.Access);
        _served.Attachments[attachment] = key;
        var remote = new Fabric.Devices.DataPlane.RemoteMemory(Id, _spec.DataPlane!.Endpoint, attachment, key, _spec.Size, _spec.Access);
        m.Importer.Tell(new ContextProtocol.AttachedRemote(remote, Self, m.ReplyTo));
    }

    private bool SecretMatches(string presented) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(_spec.Token.Secret));

    private void Detach(long attachment)
    {
        _served?.Attachments.TryRemove(attachment, out _);
        if (!_attachments.Remove(attachment, out var importer)) return;
        if (!_attachments.ContainsValue(importer)) Context.Unwatch(importer);
        StopWhenUnreferenced();
    }

    private void DetachAll(IActorRef importer)
    {
        foreach (var attachment in _attachments.Where(kv => kv.Value.Equals(importer)).Select(kv => kv.Key).ToList())
        {
            _attachments.Remove(attachment);
            _served?.Attachments.TryRemove(attachment, out _);
        }
        StopWhenUnreferenced();
    }

    private void ExporterReleased()
    {
        _exporterHolds = false;
        Context.Unwatch(_spec.Exporter);
        StopWhenUnreferenced();
    }

    private void StopWhenUnreferenced()
    {
        if (_exporterHolds || _attachments.Count > 0) return;
        _log.Debug("{0} has no exporter and no importer left: releasing its memory", Id);
        Context.Stop(Self);
    }

    private void OnRevoke(DmaBufExport.Revoke m)
    {
        if (!m.Requester.Equals(_spec.Exporter))
        {
            m.ReplyTo.Tell(new FabricError(ErrorCode.EPERM, $"{m.RequesterName} may not revoke {Id}: it belongs to {_spec.ExporterName}"));
            return;
        }
        var error = new FabricError(ErrorCode.EIO, $"{Id} was revoked by its exporter {_spec.ExporterName}");
        _served?.End(error); // transfers in flight stop at their next chunk
        var importers = _attachments.Values.Distinct().ToList();
        foreach (var importer in importers) importer.Tell(new ContextProtocol.ImportRevoked(Id, error));
        _spec.Exporter.Tell(new ContextProtocol.ExportReleased(Id, _spec.Handle));
        m.ReplyTo.Tell(new Revoked(Id, importers.Count));
        Context.Stop(Self);
    }

    protected override void PostStop()
    {
        _spec.DataPlane?.Exports.Unregister(Id, new FabricError(ErrorCode.EIO, $"{Id} was released"));
        _spec.Block.Release();
    }
}
