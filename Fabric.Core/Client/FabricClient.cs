using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Actor;
using Akka.Remote;
using Fabric.Core.Protocol;

namespace Fabric.Core.Client;

/// <summary>Settings of a <see cref="FabricClient"/>; the defaults suit a local or LAN fabric.</summary>
public sealed record FabricClientOptions
{
    /// <summary>How long a request may go unanswered before it fails with ETIMEDOUT.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Host writes and reads larger than this travel as several messages of this size.</summary>
    public int TransferChunkBytes { get; init; } = 64 * 1024;
}

/// <summary>
/// The canonical userspace of Fabric: the one library every program uses to enumerate, open and drive devices.
/// A client owns a session actor in the caller's ActorSystem; every context it opens death-watches that session,
/// so when the client is disposed, or its process dies, the fabric releases everything the client held.
/// </summary>
public sealed class FabricClient : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly IActorRef _deviceManager;
    private readonly IActorRef _session;
    private readonly List<DeviceContext> _open = [];
    private readonly ConcurrentDictionary<long, PendingSubmit> _byTag = new();
    private readonly ConcurrentDictionary<FenceId, TaskCompletionSource<FenceStatus>> _byFence = new();
    private readonly ConcurrentQueue<FenceId> _signalledOrder = new();
    private readonly ConcurrentDictionary<Address, TaskCompletionSource<FabricError>> _lost = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<FabricError>> _lostNodes = new();
    private readonly ConcurrentDictionary<string, Address> _nodeAddresses = new();
    private readonly ConcurrentDictionary<IActorRef, DeviceContext> _contextsByActor = new();
    private long _nextTag;
    private int _disposed;

    private FabricClient(ActorSystem system, IActorRef deviceManager, FabricClientOptions options)
    {
        _system = system;
        _deviceManager = deviceManager;
        Options = options;
        _session = system.ActorOf(Props.Create(() => new ClientSessionActor(this)), $"fabric-client-{Guid.NewGuid():N}");
        Observe(deviceManager, node: null);
    }

    /// <summary>Connects to a device manager (a node's, or a local one) from <paramref name="system"/>.</summary>
    public static FabricClient Connect(ActorSystem system, IActorRef deviceManager, FabricClientOptions? options = null) =>
        new(system, deviceManager, options ?? new FabricClientOptions());

    /// <summary>
    /// Connects to the node listening at <paramref name="endpoint"/> (<c>host:port</c> of its Akka endpoint) from a
    /// remoting-enabled <paramref name="system"/> (see <see cref="FabricClientSystem"/>). Every device of the cluster
    /// is then reachable through it. A node answers only to the host it advertises (an IP address, by default): a host
    /// name is tried as given, then as each of its IPv4 addresses, and the first that answers is used. Not host:port →
    /// EINVAL; no node there → ENODEV.
    /// </summary>
    public static async Task<FabricClient> ConnectAsync(ActorSystem system, string endpoint, FabricClientOptions? options = null,
        CancellationToken cancel = default)
    {
        options ??= new FabricClientOptions();
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint[(colon + 1)..], out var port) || port is < 1 or > 65535)
            throw new FabricException(FabricError.Invalid($"'{endpoint}' is not host:port of a Fabric node's Akka endpoint (e.g. 127.0.0.1:4053)"));
        var host = endpoint[..colon];
        var hosts = new List<string> { host };
        if (!System.Net.IPAddress.TryParse(host.Trim('[', ']'), out _))
        {
            try
            {
                var addresses = await System.Net.Dns.GetHostAddressesAsync(host, System.Net.Sockets.AddressFamily.InterNetwork, cancel);
                hosts.AddRange(addresses.Select(a => a.ToString()).Distinct());
            }
            catch (System.Net.Sockets.SocketException e)
            {
                throw new FabricException(new FabricError(ErrorCode.ENODEV, $"no Fabric node answers at {endpoint}: the host name {host} does not resolve ({e.Message})"));
            }
        }
        var protocol = ((ExtendedActorSystem)system).Provider.DefaultAddress.Protocol; // akka.tcp, or akka.ssl.tcp with TLS
        var paths = hosts.Select(h => $"{protocol}://{FabricClientSystem.ClusterSystemName}@{h}:{port}/user/devices").ToList();
        // One at a time (two associations at once to one node were seen to leave the second unanswered): with several,
        // first briefly each, then each with the full timeout.
        var rounds = paths.Count == 1 ? [options.RequestTimeout] : new[] { TimeSpan.FromSeconds(2), options.RequestTimeout };
        foreach (var timeout in rounds)
            foreach (var path in paths)
            {
                try
                {
                    var manager = await system.ActorSelection(path).ResolveOne(timeout, cancel);
                    if (!manager.IsNobody()) return new FabricClient(system, manager, options);
                }
                catch (ActorNotFoundException) { }
            }
        throw new FabricException(new FabricError(ErrorCode.ENODEV, hosts.Count == 1
            ? $"no Fabric node answers at {endpoint} ({paths[0]})"
            : $"no Fabric node answers at {endpoint}, tried as {string.Join(", ", hosts.Select(h => $"{h}:{port}"))}; a node answers only to the host it " +
              "advertises (its --public-host, else its --host)"));
    }

    public FabricClientOptions Options { get; }

    /// <summary>The actor that stands for this client; contexts death-watch it.</summary>
    public IActorRef Session => _session;

    /// <summary>Every device of the node with its current info, without opening any.</summary>
    public async Task<IReadOnlyList<DeviceInfo>> ListDevicesAsync(CancellationToken cancel = default) =>
        (await RequestAsync<DeviceRequests.DeviceList>(_deviceManager, new DeviceRequests.ListDevices(), "list devices", cancel)).Devices;

    /// <summary>One device's info, without opening it.</summary>
    public Task<DeviceInfo> GetDeviceInfoAsync(DeviceId device, CancellationToken cancel = default) =>
        RequestAsync<DeviceInfo>(_deviceManager, new DeviceRequests.GetDeviceInfo(device), $"read info of {device}", cancel, lostAlso: LostNode(device.Node));

    /// <summary>Opens a device: a new context, released when closed or when this client goes away.</summary>
    public async Task<DeviceContext> OpenAsync(DeviceId device, CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var opened = await RequestAsync<DeviceRequests.DeviceOpened>(
            _deviceManager, new DeviceRequests.OpenDevice(device, _session), $"open {device}", cancel, lostAlso: LostNode(device.Node));
        var context = new DeviceContext(this, opened);
        lock (_open) _open.Add(context);
        _contextsByActor[opened.Context] = context;
        Observe(opened.Context, opened.Device.Node);
        return context;
    }

    /// <summary>
    /// Waits for a fence. A zero or expired timeout returns <see cref="FenceState.Busy"/> (not an error); a fence that
    /// signalled with an error returns <see cref="FenceState.Failed"/> with that error.
    /// </summary>
    public async Task<FenceStatus> WaitAsync(FenceId fence, TimeSpan timeout, CancellationToken cancel = default)
    {
        var lost = LostNode(fence.Device.Node);
        // A fence of this client's own submission is told to the session when it signals: wait here, not on the device.
        // A poll (zero timeout) of one not yet told asks the device, which may know it signalled a moment ago.
        if (!_byFence.TryGetValue(fence, out var signalled) || (timeout <= TimeSpan.Zero && !signalled.Task.IsCompleted))
            return await CancellableWaitAsync(fence.Device, tag => new DeviceRequests.WaitFence(fence, timeout, _session, tag), (FenceStatus s) => s,
                $"wait on {fence}", timeout, lost, cancel);
        if (!signalled.Task.IsCompleted && timeout > TimeSpan.Zero)
            await Task.WhenAny(signalled.Task, Task.Delay(timeout, cancel), lost ?? Task.Delay(Timeout.Infinite, cancel));
        cancel.ThrowIfCancellationRequested();
        if (signalled.Task.IsCompleted) return await signalled.Task;
        if (lost is { IsCompleted: true }) throw new FabricException(await lost);
        return new FenceStatus(fence, FenceState.Busy, null);
    }

    /// <summary>How many signalled fences of this client's submissions are remembered for a quick wait.</summary>
    private const int RememberedFences = 4096;

    private sealed class PendingSubmit(SubmitPipe pipe, ContextRequests.Submit submit)
    {
        public readonly TaskCompletionSource<ContextRequests.Submitted> Accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource<FenceStatus> Signalled = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public SubmitPipe Pipe { get; } = pipe;
        public ContextRequests.Submit Submit { get; } = submit;
        public int Answered;
    }

    /// <summary>
    /// Sends one context's submissions like Nagle's algorithm: alone when none is unanswered, otherwise gathered and
    /// sent as one <see cref="ContextRequests.SubmitBatch"/> when the last unanswered one is answered (or the batch
    /// is full). Order is kept: everything goes through this pipe, in submission order.
    /// </summary>
    private sealed class SubmitPipe(IActorRef context, IActorRef session)
    {
        public IActorRef Context => context;

        private const int MaxBatch = 128;
        private const int MaxBatchBytes = 512 * 1024;
        private readonly Lock _gate = new();
        private readonly List<PendingSubmit> _buffer = [];
        private int _unanswered;
        private int _bufferedBytes;

        public void Send(PendingSubmit pending)
        {
            lock (_gate)
            {
                if (_unanswered == 0 && _buffer.Count == 0)
                {
                    _unanswered++;
                    context.Tell(pending.Submit, session);
                    return;
                }
                _buffer.Add(pending);
                _bufferedBytes += pending.Submit.Commands.Length;
                if (_buffer.Count >= MaxBatch || _bufferedBytes >= MaxBatchBytes) FlushLocked();
            }
        }

        /// <summary>The submission was answered, or its submitter gave up on it; safe to call more than once.</summary>
        public void Answered(PendingSubmit pending)
        {
            if (Interlocked.Exchange(ref pending.Answered, 1) != 0) return;
            lock (_gate)
            {
                if (_buffer.Remove(pending))
                {
                    _bufferedBytes -= pending.Submit.Commands.Length;
                    return;
                }
                _unanswered--;
                if (_unanswered == 0 && _buffer.Count > 0) FlushLocked();
            }
        }

        private void FlushLocked()
        {
            _unanswered += _buffer.Count;
            context.Tell(_buffer.Count == 1 ? _buffer[0].Submit : new ContextRequests.SubmitBatch([.. _buffer.Select(p => p.Submit)]), session);
            _buffer.Clear();
            _bufferedBytes = 0;
        }
    }

    private readonly ConcurrentDictionary<IActorRef, SubmitPipe> _pipes = new();

    /// <summary>
    /// Sends a tagged submission one-way to <paramref name="context"/> and waits for its acceptance: the answers come
    /// to the session as <see cref="ContextRequests.SubmitAccepted"/>, <see cref="ContextRequests.SubmitRejected"/>
    /// and <see cref="ContextRequests.FenceSignalled"/>, so many submissions can be in flight without an ask each.
    /// </summary>
    internal async Task<ContextRequests.Submitted> SubmitAsync(IActorRef context, Func<long, ContextRequests.Submit> submit, string what,
        CancellationToken cancel)
    {
        var tag = Interlocked.Increment(ref _nextTag);
        var pipe = _pipes.GetOrAdd(context, c => new SubmitPipe(c, _session));
        var pending = new PendingSubmit(pipe, submit(tag));
        _byTag[tag] = pending;
        try
        {
            if (LostTask(context.Path.Address) is { IsCompleted: true } lost) throw new FabricException(await lost);
            pipe.Send(pending);
            return await AwaitAsync(pending.Accepted.Task, context, what, Options.RequestTimeout, cancel);
        }
        catch
        {
            _byTag.TryRemove(tag, out _);
            pipe.Answered(pending);
            throw;
        }
    }

    private void OnSubmitAccepted(ContextRequests.SubmitAccepted message)
    {
        if (!_byTag.TryGetValue(message.Tag, out var pending)) return;
        _byFence[message.Submitted.Fence] = pending.Signalled; // before the submitter can wait on it
        if (message.Completed is { } completed) OnFenceSignalled(new ContextRequests.FenceSignalled(message.Tag, completed));
        pending.Pipe.Answered(pending);
        pending.Accepted.TrySetResult(message.Submitted);
    }

    private void OnSubmitRejected(ContextRequests.SubmitRejected message)
    {
        if (!_byTag.TryRemove(message.Tag, out var pending)) return;
        pending.Pipe.Answered(pending);
        pending.Accepted.TrySetException(new FabricException(message.Error));
    }

    private void OnFenceSignalled(ContextRequests.FenceSignalled message)
    {
        if (!_byTag.TryRemove(message.Tag, out var pending)) return;
        pending.Signalled.TrySetResult(message.Status);
        _signalledOrder.Enqueue(message.Status.Fence);
        while (_signalledOrder.Count > RememberedFences && _signalledOrder.TryDequeue(out var old)) _byFence.TryRemove(old, out _);
    }

    /// <summary>Awaits <paramref name="task"/>, failing with ETIMEDOUT after <paramref name="timeout"/> or ENODEV when the target's node is lost.</summary>
    private async Task<T> AwaitAsync<T>(Task<T> task, IActorRef target, string what, TimeSpan timeout, CancellationToken cancel)
    {
        var lost = LostTask(target.Path.Address);
        try
        {
            if (lost is null) return await task.WaitAsync(timeout, cancel);
            var bounded = task.WaitAsync(timeout, cancel);
            if (await Task.WhenAny(bounded, lost) == lost) throw new FabricException(await lost);
            return await bounded;
        }
        catch (TimeoutException)
        {
            throw new FabricException(new FabricError(ErrorCode.ETIMEDOUT, $"no answer within {timeout.TotalSeconds:0.#} s to '{what}' from {target.Path}"));
        }
    }

    /// <summary>Waits until any of the fences (all of one device) signals; returns those that had.</summary>
    public async Task<ImmutableArray<FenceStatus>> WaitAnyAsync(IEnumerable<FenceId> fences, TimeSpan timeout, CancellationToken cancel = default)
    {
        ImmutableArray<FenceId> set = [.. fences];
        var device = set.IsEmpty ? default : set[0].Device;
        return await CancellableWaitAsync(device, tag => new DeviceRequests.WaitAnyFence(set, timeout, _session, tag),
            (DeviceRequests.FenceSet s) => s.Signalled, "wait on any of several fences", timeout, device.Node is null ? null : LostNode(device.Node), cancel);
    }

    /// <summary>
    /// A wait on the device that, when <paramref name="cancel"/> fires first, is cancelled on the device too: its
    /// waiter is gone at once instead of staying counted until its fence signals or its timeout passes.
    /// </summary>
    private async Task<TResult> CancellableWaitAsync<TReply, TResult>(DeviceId device, Func<long, IFabricMessage> wait, Func<TReply, TResult> result,
        string what, TimeSpan timeout, Task<FabricError>? lost, CancellationToken cancel)
    {
        var tag = Interlocked.Increment(ref _nextTag);
        try
        {
            return result(await RequestAsync<TReply>(_deviceManager, wait(tag), what, cancel, timeout, lost));
        }
        catch (Exception) when (cancel.IsCancellationRequested && device.Node is not null)
        {
            _deviceManager.Tell(new DeviceRequests.CancelWait(device, _session, tag));
            throw;
        }
    }

    /// <summary>Resets a device: every in-flight submission ends with EIO. Returns how many were aborted.</summary>
    /// <remarks><paramref name="hold"/> keeps the device in reset at least that long (its status reads InReset meanwhile).</remarks>
    public async Task<int> ResetDeviceAsync(DeviceId device, CancellationToken cancel = default, TimeSpan hold = default) =>
        (await RequestAsync<DeviceRequests.DeviceResetDone>(_deviceManager, new DeviceRequests.ResetDevice(device, hold), $"reset {device}", cancel,
            waitsFor: hold, lostAlso: LostNode(device.Node))).AbortedSubmissions;

    /// <summary>Closes every context this client opened, then stops its session.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        DeviceContext[] open;
        lock (_open) open = [.. _open];
        foreach (var context in open) await context.DisposeAsync();
        await _session.GracefulStop(Options.RequestTimeout);
    }

    internal void Forget(DeviceContext context)
    {
        lock (_open) _open.Remove(context);
    }

    /// <summary>
    /// Death-watches an actor of a node. When its node is lost (the remote failure detector gives up on it), every
    /// pending and later request to that node fails at once with ENODEV instead of waiting for a timeout.
    /// </summary>
    private void Observe(IActorRef actor, string? node)
    {
        var address = actor.Path.Address;
        if (!address.HasGlobalScope)
        {
            if (node is not null) _session.Tell(new ClientSessionActor.Watch(actor)); // a context here: it can still fail
            return; // in this process: its node cannot be lost without us
        }
        _lost.GetOrAdd(address, _ => NewLoss());
        if (node is not null) _nodeAddresses[node] = address;
        _session.Tell(new ClientSessionActor.Watch(actor));
    }

    /// <summary>
    /// Tells the client that the node at <paramref name="address"/> (named <paramref name="node"/>, when the caller knows)
    /// is unreachable — e.g. the cluster's failure detector said so, before any death-watch fires: its pending and
    /// later requests fail with ENODEV now (requests for its devices by name too, even those sent before this client
    /// knew where the node was), and its contexts are no longer usable.
    /// </summary>
    public void NodeUnreachable(Address address, string why, string? node = null)
    {
        if (node is not null) _nodeAddresses[node] = address;
        var error = new FabricError(ErrorCode.ENODEV, $"{NameOf(address)} is unreachable: {why}");
        _lost.GetOrAdd(address, _ => NewLoss()).TrySetResult(error);
        foreach (var name in NamesAt(address)) _lostNodes.GetOrAdd(name, _ => NewLoss()).TrySetResult(error);
        foreach (var (actor, context) in _contextsByActor)
            if (actor.Path.Address == address && _contextsByActor.TryRemove(actor, out _)) context.MarkGone(nodeLost: true);
    }

    /// <summary>
    /// Tells the client that the node at <paramref name="address"/> is back (reachable again, or a new incarnation of it
    /// is Up): requests to it are sent again. Contexts it had before stay gone.
    /// </summary>
    public void NodeReturned(Address address, string? node = null)
    {
        if (node is not null) _nodeAddresses[node] = address;
        Renew(_lost, address);
        foreach (var name in NamesAt(address)) Renew(_lostNodes, name);
    }

    private static void Renew<TKey>(ConcurrentDictionary<TKey, TaskCompletionSource<FabricError>> losses, TKey key) where TKey : notnull
    {
        if (losses.TryGetValue(key, out var lost) && lost.Task.IsCompleted) losses.TryUpdate(key, NewLoss(), lost);
    }

    private static TaskCompletionSource<FabricError> NewLoss() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private List<string> NamesAt(Address address) => [.. _nodeAddresses.Where(kv => kv.Value == address).Select(kv => kv.Key)];

    private string NameOf(Address address) => NamesAt(address) is { Count: > 0 } nodes ? $"node {string.Join(", ", nodes)} ({address})" : $"the node at {address}";

    /// <summary>Whether this client talks to the node at <paramref name="address"/> and has not found it lost.</summary>
    private bool Observes(Address address) => _lost.TryGetValue(address, out var lost) && !lost.Task.IsCompleted;

    private Task<FabricError>? LostTask(Address address) => _lost.TryGetValue(address, out var lost) ? lost.Task : null;

    /// <summary>The loss of the node named <paramref name="node"/>, as this client learns it: requests for its devices then fail at once.</summary>
    internal Task<FabricError> LostNode(string node) => _lostNodes.GetOrAdd(node, _ => NewLoss()).Task;

    private void OnTerminated(Terminated terminated)
    {
        var address = terminated.ActorRef.Path.Address;
        if (terminated.AddressTerminated && _lost.TryGetValue(address, out var lost))
        {
            var error = new FabricError(ErrorCode.ENODEV, $"{NameOf(address)} is lost: its devices, contexts and fences are gone");
            lost.TrySetResult(error);
            foreach (var name in NamesAt(address)) _lostNodes.GetOrAdd(name, _ => NewLoss()).TrySetResult(error);
        }
        if (_contextsByActor.TryRemove(terminated.ActorRef, out var context))
        {
            context.MarkGone(terminated.AddressTerminated);
            FailPendingSubmits(terminated.ActorRef, context);
        }
    }

    /// <summary>The node told this client that a context failed or was torn down: it and its pending requests fail with the error.</summary>
    private void OnContextFailed(ContextRequests.ContextFailed message)
    {
        if (!_contextsByActor.TryGetValue(message.Context, out var context)) return;
        context.MarkGone(message.Error);
        FailPendingSubmits(message.Context, context);
    }

    /// <summary>Submissions to a context that is gone and not yet accepted will never be: they fail with its error.</summary>
    private void FailPendingSubmits(IActorRef actor, DeviceContext context)
    {
        if (context.GoneError is not { } error) return;
        foreach (var (tag, pending) in _byTag)
            if (pending.Pipe.Context.Equals(actor) && !pending.Accepted.Task.IsCompleted && _byTag.TryRemove(tag, out _))
            {
                pending.Pipe.Answered(pending);
                pending.Accepted.TrySetException(new FabricException(error));
            }
    }

    /// <summary>
    /// Asks <paramref name="target"/> and returns the reply of type <typeparamref name="T"/>; a <see cref="FabricError"/>
    /// reply or no reply in time throws <see cref="FabricException"/>.
    /// </summary>
    internal async Task<T> RequestAsync<T>(IActorRef target, IFabricMessage request, string what, CancellationToken cancel,
        TimeSpan? waitsFor = null, Task<FabricError>? lostAlso = null)
    {
        var timeout = Options.RequestTimeout + (waitsFor is { } w && w > TimeSpan.Zero ? w : TimeSpan.Zero);
        var lost = LostTask(target.Path.Address);
        foreach (var gone in new[] { lost, lostAlso })
            if (gone is { IsCompleted: true }) throw new FabricException(await gone);
        object reply;
        try
        {
            var ask = target.Ask<object>(request, timeout, cancel);
            if (lost is not null || lostAlso is not null)
            {
                var first = await Task.WhenAny(ask, lost ?? Task.Delay(Timeout.Infinite, cancel), lostAlso ?? Task.Delay(Timeout.Infinite, cancel));
                if (first != ask && first is Task<FabricError> gone) throw new FabricException(await gone);
            }
            reply = await ask;
        }
        catch (AskTimeoutException)
        {
            throw new FabricException(new FabricError(ErrorCode.ETIMEDOUT,
                $"no answer within {timeout.TotalSeconds:0.#} s to '{what}' from {target.Path}"));
        }
        return reply switch
        {
            T ok => ok,
            FabricError error => throw new FabricException(error),
            Status.Failure failure => throw new FabricException(new FabricError(ErrorCode.EIO, $"'{what}' failed: {failure.Cause.Message}")),
            _ => throw new FabricException(new FabricError(ErrorCode.EIO, $"'{what}' got an unexpected reply {reply.GetType().Name}")),
        };
    }

    /// <summary>
    /// Stands for the client (contexts death-watch it), receives its fence signals, and death-watches the client's
    /// contexts and entry node so their loss is known at once.
    /// </summary>
    private sealed class ClientSessionActor : ReceiveActor
    {
        public sealed record Watch(IActorRef Actor) : INoSerializationVerificationNeeded;

        private readonly HashSet<Address> _probing = [];

        public ClientSessionActor(FabricClient client)
        {
            // A connection to a node that closed: is its process gone (see PortProbe)?
            Receive<DisassociatedEvent>(m =>
            {
                if (client.Observes(m.RemoteAddress) && _probing.Add(m.RemoteAddress)) PortProbe.Start(m.RemoteAddress, Self);
            });
            Receive<PortProbe.Answered>(m =>
            {
                _probing.Remove(m.Address);
                if (m.Refused) client.NodeUnreachable(m.Address, PortProbe.Reason);
            });
            Receive<ContextRequests.SubmitAccepted>(client.OnSubmitAccepted);
            Receive<ContextRequests.SubmitRejected>(client.OnSubmitRejected);
            Receive<ContextRequests.FenceSignalled>(client.OnFenceSignalled);
            Receive<ContextRequests.ContextFailed>(client.OnContextFailed);
            Receive<ContextRequests.SubmitOutcomes>(m =>
            {
                foreach (var accepted in m.Accepted) client.OnSubmitAccepted(accepted);
                foreach (var signalled in m.Signalled) client.OnFenceSignalled(signalled);
            });
            Receive<Watch>(m => Context.Watch(m.Actor));
            Receive<Terminated>(client.OnTerminated);
        }

        protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(DisassociatedEvent));

        protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);
    }
}
