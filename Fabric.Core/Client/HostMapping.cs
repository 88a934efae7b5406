namespace Fabric.Core.Client;

/// <summary>
/// Host memory of this client mapped for a device (<see cref="DeviceContext.MapHostMemoryAsync"/>).
/// <para><see cref="ZeroCopy"/>: the device's node is in this process, and the device reads and writes the memory
/// itself; what a submission wrote is in the memory once its fence has signalled.</para>
/// <para>Otherwise the node keeps a copy in its own host memory (never the device's): the memory is copied there
/// when mapped, <see cref="SyncToDeviceAsync"/> copies it again after the host changed it, and
/// <see cref="SyncFromDeviceAsync"/> copies back what the device wrote (so does the unmap, for a writable mapping),
/// like the begin/end CPU access of a dma-buf. Both are no-ops for a zero-copy mapping.</para>
/// Unmapping (or disposing) waits for or stops the device's users of the range as any unmap does, and returns
/// only when the device can no longer touch the memory.
/// </summary>
public sealed class HostMapping : IAsyncDisposable
{
    private static readonly TimeSpan ReleaseTimeout = TimeSpan.FromSeconds(30);
    private readonly DeviceContext _context;
    private readonly HostMemoryPins.Pin? _pin;
    private readonly Memory<byte> _memory;
    private int _unmapped;

    internal HostMapping(DeviceContext context, AddressSpaceId space, BufferHandle handle, Memory<byte> memory, Access access,
        HostMemoryPins.Pin? pin)
    {
        (_context, Space, Handle, _memory, Access, _pin) = (context, space, handle, memory, access, pin);
    }

    public AddressSpaceId Space { get; }
    public Iova Iova { get; internal set; }
    public long Length => _memory.Length;
    public Access Access { get; }

    /// <summary>The buffer handle the context holds for the memory (it cannot be exported).</summary>
    public BufferHandle Handle { get; }

    /// <summary>True when the device works on the memory itself; false when it works on a copy on its node.</summary>
    public bool ZeroCopy => _pin is not null;

    /// <summary>Completes when the device has let go of the memory (at once for a copied mapping).</summary>
    internal Task Released => _pin?.Released ?? Task.CompletedTask;

    public override string ToString() => $"host memory of {Length} bytes at {Iova} in {Space}{(ZeroCopy ? "" : " (copied)")}";

    /// <summary>Copies the host memory to the node's copy (for a mapping the device reads); no-op when zero-copy.</summary>
    public Task SyncToDeviceAsync(CancellationToken cancel = default) =>
        ZeroCopy || !Access.HasFlag(Access.Read) ? Task.CompletedTask : _context.WriteAsync(Handle, 0, _memory, cancel);

    /// <summary>Copies what the device wrote back into the host memory (for a writable mapping); no-op when zero-copy.</summary>
    public async Task SyncFromDeviceAsync(CancellationToken cancel = default)
    {
        if (ZeroCopy || !Access.HasFlag(Access.Write)) return;
        var bytes = await _context.ReadAsync(Handle, 0, _memory.Length, cancel);
        bytes.CopyTo(_memory);
    }

    /// <summary>Copies back (for a copied, writable mapping), unmaps and releases the memory; once.</summary>
    public async Task UnmapAsync(CancellationToken cancel = default)
    {
        if (Interlocked.Exchange(ref _unmapped, 1) != 0) return;
        try
        {
            await SyncFromDeviceAsync(cancel);
            await _context.UnmapAsync(Space, Iova, (ulong)Length, cancel);
        }
        finally { await ReleaseAsync(); }
    }

    public async ValueTask DisposeAsync()
    {
        try { await UnmapAsync(); }
        catch (FabricException e) when (e.Code is ErrorCode.ENODEV or ErrorCode.ETIMEDOUT)
        {
            // The context is gone: its node released the memory with it.
        }
    }

    /// <summary>Frees the handle and, for a zero-copy mapping, waits until the device has let go of the memory.</summary>
    internal async Task ReleaseAsync()
    {
        if (!_context.IsUsable) return; // the node released it with the context
        await _context.FreeAsync(Handle);
        if (_pin is not null) await _pin.Released.WaitAsync(ReleaseTimeout);
    }
}
