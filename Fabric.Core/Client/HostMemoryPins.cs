using System.Buffers;
using System.Collections.Concurrent;

namespace Fabric.Core.Client;

/// <summary>
/// Host memory that clients of this process pinned for devices, until a node in this process claims it (zero-copy)
/// or the client withdraws it (the node was elsewhere and keeps a copy). Each pin is claimed at most once; a claimed
/// pin stays pinned until the device's last reference to it is gone (<see cref="Pin.Released"/>).
/// </summary>
internal static class HostMemoryPins
{
    /// <summary>This process, as tokens name it.</summary>
    public static readonly Guid Process = Guid.NewGuid();

    private static readonly ConcurrentDictionary<long, Pin> Waiting = new();
    private static long _next;

    public static Pin Register(Memory<byte> memory)
    {
        var pin = new Pin(new HostMemoryToken(Process, Interlocked.Increment(ref _next)), memory);
        Waiting[pin.Token.Id] = pin;
        return pin;
    }

    /// <summary>A node's claim: the pin when the token names one of this process's waiting pins of that size.</summary>
    public static Pin? TryClaim(HostMemoryToken token, long size) =>
        token.Process == Process && Waiting.TryGetValue(token.Id, out var pin) && pin.Length == size &&
        Waiting.TryRemove(new KeyValuePair<long, Pin>(token.Id, pin)) ? pin : null;

    /// <summary>The client's withdrawal of a pin no node claimed: it is unpinned now. False when a node had claimed it.</summary>
    public static bool TryWithdraw(Pin pin)
    {
        if (!Waiting.TryRemove(new KeyValuePair<long, Pin>(pin.Token.Id, pin))) return false;
        pin.Unpin();
        return true;
    }

    public sealed unsafe class Pin
    {
        private MemoryHandle _handle;
        private int _unpinned;
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal Pin(HostMemoryToken token, Memory<byte> memory)
        {
            Token = token;
            Length = memory.Length;
            _handle = memory.Pin();
            Pointer = (byte*)_handle.Pointer;
        }

        public HostMemoryToken Token { get; }
        public long Length { get; }
        public byte* Pointer { get; }

        /// <summary>Completes once the memory is unpinned: no device can touch it any more.</summary>
        public Task Released => _released.Task;

        /// <summary>Unpins the memory, once.</summary>
        public void Unpin()
        {
            if (Interlocked.Exchange(ref _unpinned, 1) != 0) return;
            _handle.Dispose();
            _released.TrySetResult();
        }
    }
}
