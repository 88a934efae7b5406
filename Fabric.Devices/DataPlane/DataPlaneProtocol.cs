using System.Buffers.Binary;
using System.Text;
using Fabric.Core;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// The data plane's wire format: TCP (inside TLS when the cluster has certificates), one request at a time per
/// connection, connections kept for reuse.
/// <code>
/// request (64 bytes, little-endian):
///   0 u32 magic 'FDP1'   4 u8 op (1 READ, 2 WRITE, 3 SOURCE)   8 i32 device index   16 i64 export
///   24 i64 attachment   32 byte[16] attachment key   48 i64 offset   56 i64 length
/// chunk (both directions): u32 length, u32 status; status 0: `length` bytes of data follow (length 0 ends the
/// stream); status ≠ 0: an errno, and `length` bytes of a UTF-8 sentence follow; the transfer is over.
/// READ: the server streams the bytes. WRITE: the client streams them, the server answers one final chunk.
/// SOURCE: the server streams `length` bytes of nothing in particular — the raw-TCP baseline of the benchmark,
/// with the same framing and chunk size as READ.
/// </code>
/// </summary>
internal static class DataPlaneProtocol
{
    public const uint Magic = 0x31504446;
    public const int RequestBytes = 64;
    public const int ChunkHeaderBytes = 8;
    public const int ChunkBytes = 1 << 20;
    public const int KeyBytes = 16;

    public enum Op : byte { Read = 1, Write = 2, Source = 3 }

    public readonly record struct Request(Op Op, int Device, long Export, long Attachment, byte[] Key, long Offset, long Length)
    {
        public void WriteTo(Span<byte> b)
        {
            b[..RequestBytes].Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(b, Magic);
            b[4] = (byte)Op;
            BinaryPrimitives.WriteInt32LittleEndian(b[8..], Device);
            BinaryPrimitives.WriteInt64LittleEndian(b[16..], Export);
            BinaryPrimitives.WriteInt64LittleEndian(b[24..], Attachment);
            Key.AsSpan(0, Math.Min(KeyBytes, Key.Length)).CopyTo(b[32..48]);
            BinaryPrimitives.WriteInt64LittleEndian(b[48..], Offset);
            BinaryPrimitives.WriteInt64LittleEndian(b[56..], Length);
        }

        public static Request? Read(ReadOnlySpan<byte> b)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(b) != Magic || b[4] is < 1 or > 3) return null;
            return new Request((Op)b[4], BinaryPrimitives.ReadInt32LittleEndian(b[8..]), BinaryPrimitives.ReadInt64LittleEndian(b[16..]),
                BinaryPrimitives.ReadInt64LittleEndian(b[24..]), b[32..48].ToArray(), BinaryPrimitives.ReadInt64LittleEndian(b[48..]),
                BinaryPrimitives.ReadInt64LittleEndian(b[56..]));
        }
    }

    public static async ValueTask SendChunkHeaderAsync(Stream stream, int length, uint status, CancellationToken cancel)
    {
        var header = new byte[ChunkHeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(header, length);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), status);
        await SendAllAsync(stream, header, cancel);
    }

    public static ValueTask SendErrorAsync(Stream stream, FabricError error, CancellationToken cancel) => SendAllAsync(stream, ErrorChunk(error), cancel);

    /// <summary>An error chunk whole: its header (the text's length, the errno as status) and the sentence in UTF-8.</summary>
    public static byte[] ErrorChunk(FabricError error)
    {
        var text = Encoding.UTF8.GetBytes(error.Message);
        var chunk = new byte[ChunkHeaderBytes + text.Length];
        BinaryPrimitives.WriteInt32LittleEndian(chunk, text.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(chunk.AsSpan(4), (uint)error.Code);
        text.CopyTo(chunk.AsSpan(ChunkHeaderBytes));
        return chunk;
    }

    /// <summary>Reads a chunk header; an error chunk is read whole and returned as the error.</summary>
    public static async ValueTask<(int Length, FabricError? Error)> ReceiveChunkHeaderAsync(Stream stream, byte[] scratch, CancellationToken cancel)
    {
        await ReceiveExactlyAsync(stream, scratch.AsMemory(0, ChunkHeaderBytes), cancel);
        var length = BinaryPrimitives.ReadInt32LittleEndian(scratch);
        var status = BinaryPrimitives.ReadUInt32LittleEndian(scratch.AsSpan(4));
        if (status == 0) return (length, null);
        var text = new byte[Math.Clamp(length, 0, 64 * 1024)];
        await ReceiveExactlyAsync(stream, text, cancel);
        return (0, new FabricError((ErrorCode)status, Encoding.UTF8.GetString(text)));
    }

    /// <summary>Writes all of <paramref name="data"/>: a NetworkStream sends it whole, an SslStream as records of it, neither buffers.</summary>
    public static ValueTask SendAllAsync(Stream stream, ReadOnlyMemory<byte> data, CancellationToken cancel) => stream.WriteAsync(data, cancel);

    /// <summary>Fills <paramref name="target"/> from the stream; the peer closing first is an <see cref="EndOfStreamException"/>.</summary>
    public static async ValueTask ReceiveExactlyAsync(Stream stream, Memory<byte> target, CancellationToken cancel)
    {
        while (target.Length > 0)
        {
            var read = await stream.ReadAsync(target, cancel);
            if (read == 0) throw new EndOfStreamException("the peer closed the connection in the middle of a transfer");
            target = target[read..];
        }
    }
}
