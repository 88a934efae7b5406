using Akka.Actor;
using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.State;
using static Fabric.Core.Protocol.ContextRequests;

namespace Fabric.Devices.Internal.Execution;

/// <summary>
/// A host read or write of a buffer the context has checked: a copy in or out of the device arena (the block pinned
/// for the copy), or, for another node's memory, a transfer over the data plane answered when it ends.
/// </summary>
internal static class HostTransfer
{
    /// <summary>Answers <paramref name="replyTo"/> with <see cref="Ack"/> (write) or <see cref="BufferData"/> (read), or an error.</summary>
    public static unsafe void Run(BufferView buffer, long offset, int length, byte[]? write, FabricDataPlane? dataPlane, IActorRef replyTo, string context)
    {
        if (buffer.Remote is { } remote)
        {
            Remote(dataPlane!.Client, remote, offset, length, write).PipeTo(replyTo, failure: e => e is FabricException f
                ? f.Error with { Message = $"{context} could not reach {buffer}: {f.Error.Message}" }
                : new FabricError(ErrorCode.EIO, $"{context} could not reach {buffer}: {e.Message}"));
            return;
        }
        if (!buffer.LocalBlock.TryAcquire())
        {
            replyTo.Tell(new FabricError(ErrorCode.EIO, $"{context} cannot use {buffer}: its memory is gone"));
            return;
        }
        object reply;
        try
        {
            var memory = new Span<byte>(buffer.LocalBlock.Pointer + offset, length);
            if (write is not null)
            {
                write.CopyTo(memory);
                reply = new Ack();
            }
            else reply = new BufferData(memory.ToArray());
        }
        finally { buffer.LocalBlock.Release(); }
        replyTo.Tell(reply);
    }

    private static async Task<object> Remote(DataPlaneClient plane, RemoteMemory remote, long offset, int length, byte[]? write)
    {
        if (write is not null)
        {
            await plane.WriteAsync(remote, offset, length, (at, chunk) => write.AsMemory((int)at, chunk), CancellationToken.None);
            return new Ack();
        }
        var bytes = new byte[length];
        await plane.ReadAsync(remote, offset, length, (at, chunk) => bytes.AsMemory((int)at, chunk), CancellationToken.None);
        return new BufferData(bytes);
    }
}
