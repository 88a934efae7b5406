using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Actor;
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
    private readonly ConcurrentDictionary<long, TaskCompletionSource<FenceStatus>> _byTag = new();
    private readonly ConcurrentDictionary<FenceId, TaskCompletionSource<FenceStatus>> _byFence = new();
    private long _nextTag;
    private int _disposed;

    private FabricClient(ActorSystem system, IActorRef deviceManager, FabricClientOptions options)
    {
        _system = system;
        _deviceManager = deviceManager;
        Options = options;
        _session = system.ActorOf(Props.Create(() => new ClientSessionActor(OnFenceSignalled)), $"fabric-client-{Guid.NewGuid():N}");
    }

    /// <summary>Connects to a device manager (a node's, or a local one) from <paramref name="system"/>.</summary>
    public static FabricClient Connect(ActorSystem system, IActorRef deviceManager, FabricClientOptions? options = null) =>
        new(system, deviceManager, options ?? new FabricClientOptions());

    public FabricClientOptions Options { get; }

    /// <summary>The actor that stands for this client; contexts death-watch it.</summary>
    public IActorRef Session => _session;

    /// <summary>Every device of the node with its current info, without opening any.</summary>
    public async Task<IReadOnlyList<DeviceInfo>> ListDevicesAsync(CancellationToken cancel = default) =>
        (await RequestAsync<DeviceRequests.DeviceList>(_deviceManager, new DeviceRequests.ListDevices(), "list devices", cancel)).Devices;

    /// <summary>One device's info, without opening it.</summary>
    public Task<DeviceInfo> GetDeviceInfoAsync(DeviceId device, CancellationToken cancel = default) =>
        RequestAsync<DeviceInfo>(_deviceManager, new DeviceRequests.GetDeviceInfo(device), $"read info of {device}", cancel);

    /// <summary>Opens a device: a new context, released when closed or when this client goes away.</summary>
    public async Task<DeviceContext> OpenAsync(DeviceId device, CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var opened = await RequestAsync<DeviceRequests.DeviceOpened>(
            _deviceManager, new DeviceRequests.OpenDevice(device, _session), $"open {device}", cancel);
        var context = new DeviceContext(this, opened);
        lock (_open) _open.Add(context);
        return context;
    }

    /// <summary>
    /// Waits for a fence. A zero or expired timeout returns <see cref="FenceState.Busy"/> (not an error); a fence that
    /// signalled with an error returns <see cref="FenceState.Failed"/> with that error.
    /// </summary>
    public async Task<FenceStatus> WaitAsync(FenceId fence, TimeSpan timeout, CancellationToken cancel = default)
    {
        // A fence of this client's own submission is told to the session when it signals: wait here, not on the device.
        if (!_byFence.TryGetValue(fence, out var signalled))
            return await RequestAsync<FenceStatus>(_deviceManager, new DeviceRequests.WaitFence(fence, timeout), $"wait on {fence}", cancel, timeout);
        if (!signalled.Task.IsCompleted && timeout > TimeSpan.Zero)
            await Task.WhenAny(signalled.Task, Task.Delay(timeout, cancel));
        cancel.ThrowIfCancellationRequested();
        return signalled.Task.IsCompleted ? await signalled.Task : new FenceStatus(fence, FenceState.Busy, null);
    }

    /// <summary>Starts tracking a submission about to be sent: its tag, and the task its fence signal completes.</summary>
    internal (long Tag, TaskCompletionSource<FenceStatus> Signalled) TrackSubmission()
    {
        var tag = Interlocked.Increment(ref _nextTag);
        var signalled = new TaskCompletionSource<FenceStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        _byTag[tag] = signalled;
        return (tag, signalled);
    }

    /// <summary>The submission was accepted as <paramref name="fence"/>: waits on it can use the signal.</summary>
    internal void TrackFence(long tag, FenceId fence, TaskCompletionSource<FenceStatus> signalled)
    {
        if (signalled.Task.IsCompleted) return;
        _byFence[fence] = signalled;
        if (signalled.Task.IsCompleted) _byFence.TryRemove(fence, out _); // signalled meanwhile
    }

    /// <summary>The submission was refused: nothing will signal.</summary>
    internal void Untrack(long tag) => _byTag.TryRemove(tag, out _);

    private void OnFenceSignalled(ContextRequests.FenceSignalled message)
    {
        if (!_byTag.TryRemove(message.Tag, out var signalled)) return;
        signalled.TrySetResult(message.Status);
        _byFence.TryRemove(message.Status.Fence, out _);
    }

    /// <summary>Waits until any of the fences (all of one device) signals; returns those that had.</summary>
    public async Task<ImmutableArray<FenceStatus>> WaitAnyAsync(IEnumerable<FenceId> fences, TimeSpan timeout, CancellationToken cancel = default) =>
        (await RequestAsync<DeviceRequests.FenceSet>(
            _deviceManager, new DeviceRequests.WaitAnyFence([.. fences], timeout), "wait on any of several fences", cancel, timeout)).Signalled;

    /// <summary>Resets a device: every in-flight submission ends with EIO. Returns how many were aborted.</summary>
    public async Task<int> ResetDeviceAsync(DeviceId device, CancellationToken cancel = default) =>
        (await RequestAsync<DeviceRequests.DeviceResetDone>(_deviceManager, new DeviceRequests.ResetDevice(device), $"reset {device}", cancel))
        .AbortedSubmissions;

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
    /// Asks <paramref name="target"/> and returns the reply of type <typeparamref name="T"/>; a <see cref="FabricError"/>
    /// reply or no reply in time throws <see cref="FabricException"/>.
    /// </summary>
    internal async Task<T> RequestAsync<T>(IActorRef target, IFabricMessage request, string what, CancellationToken cancel, TimeSpan? waitsFor = null)
    {
        var timeout = Options.RequestTimeout + (waitsFor is { } w && w > TimeSpan.Zero ? w : TimeSpan.Zero);
        object reply;
        try
        {
            reply = await target.Ask<object>(request, timeout, cancel);
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

    /// <summary>Stands for the client (contexts death-watch it) and receives its fence signals.</summary>
    private sealed class ClientSessionActor : ReceiveActor
    {
        public ClientSessionActor(Action<ContextRequests.FenceSignalled> onSignalled) =>
            Receive<ContextRequests.FenceSignalled>(onSignalled);
    }
}
