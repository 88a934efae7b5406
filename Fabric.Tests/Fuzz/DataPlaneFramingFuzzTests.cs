using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using CsCheck;
using Fabric.Core;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Memory;
using Xunit.Abstractions;

namespace Fabric.Tests.Fuzz;

/// <summary>
/// CsCheck sends 400 bad requests to a real <see cref="FabricDataPlane"/> server over loopback TCP, one connection
/// each: garbage bytes, requests cut short, bad magic or op, a wrong key, an unknown export, ranges outside the export,
/// write chunks larger than announced (or negative), a client error chunk, a write that ends early. Each connection is
/// answered with an error chunk (code and sentence) or closed, as the protocol says for that case; where the server keeps
/// it open, a valid read on the same connection still gets the right bytes. After every case a valid read from a fresh
/// connection returns the right bytes, and at the end the export's memory is unchanged and no transfer holds a pin.
/// A failure prints CsCheck's seed; set the environment variable CsCheck_Seed to it to replay.
/// </summary>
public sealed class DataPlaneFramingFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Iterations = 400;
    private const long Attachment = 7;
    private const int Size = 1 << 20;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PerConnection = TimeSpan.FromSeconds(5);
    private static readonly DeviceId Device = new("dp", 3);
    private static readonly ExportId Export = new(Device, 11);
    private static readonly byte[] Key = [.. Enumerable.Range(1, 16).Select(i => (byte)(i * 17))];

    private FabricDataPlane _server = null!;
    private FabricDataPlane _client = null!;
    private readonly DeviceMemory _memory = new(8L << 20, 256);
    private MemoryBlock _block = null!;
    private byte[] _expected = null!;
    private RemoteMemory _remote = null!;

    public unsafe Task InitializeAsync()
    {
        _server = FabricDataPlane.Start();
        _client = FabricDataPlane.Start();
        _block = _memory.TryAllocate(Size, 4096)!;
        _expected = [.. Enumerable.Range(0, Size).Select(i => (byte)(i * 7 + i / 251))];
        _expected.CopyTo(new Span<byte>(_block.Pointer, Size));
        var entry = _server.Exports.Register(Export, _block, Size, Access.ReadWrite);
        entry.Attachments[Attachment] = Key;
        _remote = new RemoteMemory(Export, _server.Endpoint, Attachment, Key, Size, Access.ReadWrite);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await _server.DisposeAsync();
        _block.Release();
        _memory.Dispose();
    }

    private enum Case { Garbage64, GarbageShort, GarbageLong, Truncated, BadMagic, BadOp, WrongKeyRead, WrongKeyWrite, UnknownExport, OutOfRangeRead, OutOfRangeWrite, OversizedChunk, ClientErrorChunk, ShortWrite }

    /// <summary>What the protocol promises for a case: the error code the server answers (none: it only closes), and whether it keeps the connection.</summary>
    private static (ErrorCode? Code, bool KeepsOpen) Promise(Attempt a) => a.Case switch
    {
        Case.GarbageShort or Case.Truncated or Case.ClientErrorChunk => (null, false),
        Case.Garbage64 or Case.BadMagic or Case.BadOp or Case.OversizedChunk => (ErrorCode.EINVAL, false),
        Case.GarbageLong => (ErrorCode.EINVAL, false),
        Case.WrongKeyRead or Case.WrongKeyWrite => (ErrorCode.EPERM, true),
        Case.UnknownExport => (ErrorCode.ENOENT, true),
        // A refused write is drained up to the length it announced: one announced negative cannot be, and ends the connection.
        Case.OutOfRangeWrite => (ErrorCode.EINVAL, OutOfRange(a).Length >= 0),
        _ => (ErrorCode.EINVAL, true), // out of range, a write that ends early
    };

    private sealed record Attempt(Case Case, byte[] Noise, int Cut, long Offset, long Length, int Pick);

    private static readonly long[] BadOffsets = [-1, long.MinValue, Size + 1, long.MaxValue, Size];
    private static readonly long[] BadLengths = [-1, long.MinValue, Size + 1, long.MaxValue, int.MaxValue + 1L];

    private static readonly Gen<Attempt> Attempts = Gen.Select(Gen.Enum<Case>(), Gen.Byte.Array[300], Gen.Int[0, 63], Gen.Long[0, Size - 1],
        Gen.Long[1, 4096], Gen.Int[0, int.MaxValue], (c, noise, cut, offset, length, pick) => new Attempt(c, noise, cut, offset, Math.Min(length, Size - offset), pick));

    private static byte[] Header(DataPlaneProtocol.Op op, int device, long export, byte[] key, long offset, long length)
    {
        var bytes = new byte[DataPlaneProtocol.RequestBytes];
        new DataPlaneProtocol.Request(op, device, export, Attachment, key, offset, length).WriteTo(bytes);
        return bytes;
    }

    private static byte[] Chunk(int length, uint status = 0)
    {
        var bytes = new byte[DataPlaneProtocol.ChunkHeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, length);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), status);
        return bytes;
    }

    /// <summary>The bytes a case sends, and whether it then closes its sending side (a request cut short waits otherwise).</summary>
    private static (byte[] Bytes, bool ShutDown) Send(Attempt a)
    {
        var read = Header(DataPlaneProtocol.Op.Read, Device.Index, Export.Value, Key, a.Offset, a.Length);
        var wrongKey = Key.ToArray();
        wrongKey[a.Pick % wrongKey.Length] ^= (byte)(1 << (a.Pick / 16 % 8));
        switch (a.Case)
        {
            case Case.Garbage64: return (NoMagic(a.Noise[..64]), false);
            case Case.GarbageShort: return (a.Noise[..Math.Max(1, a.Cut)], true);
            case Case.GarbageLong: return (NoMagic(a.Noise[..(65 + a.Pick % 200)]), true);
            case Case.Truncated: return (read[..a.Cut], true);
            case Case.BadMagic:
                BinaryPrimitives.WriteUInt32LittleEndian(read, DataPlaneProtocol.Magic ^ (1u << (a.Pick % 32)));
                return (read, false);
            case Case.BadOp:
                read[4] = (byte)(a.Pick % 2 == 0 ? 0 : 4 + a.Pick % 252); // never 3 (SOURCE, the benchmark's stream)
                return (read, false);
            case Case.WrongKeyRead:
                return (Header(DataPlaneProtocol.Op.Read, Device.Index, Export.Value, wrongKey, a.Offset, a.Length), false);
            case Case.WrongKeyWrite:
                // A refused write's data is still sent: the server reads it and drops it.
                return ([.. Header(DataPlaneProtocol.Op.Write, Device.Index, Export.Value, wrongKey, a.Offset, a.Length),
                    .. Chunk((int)a.Length), .. a.Noise.Take((int)a.Length), .. new byte[Math.Max(0, (int)a.Length - a.Noise.Length)], .. Chunk(0)], false);
            case Case.UnknownExport:
                return (a.Pick % 2 == 0
                    ? Header(DataPlaneProtocol.Op.Read, Device.Index, Export.Value + 1 + a.Pick % 1000, Key, a.Offset, a.Length)
                    : Header(DataPlaneProtocol.Op.Read, a.Pick % 3 == 0 ? -1 : Device.Index + 1, Export.Value, Key, a.Offset, a.Length), false);
            case Case.OutOfRangeRead:
            case Case.OutOfRangeWrite:
                {
                    var (offset, length) = OutOfRange(a);
                    var op = a.Case == Case.OutOfRangeRead ? DataPlaneProtocol.Op.Read : DataPlaneProtocol.Op.Write;
                    var header = Header(op, Device.Index, Export.Value, Key, offset, length);
                    return (op == DataPlaneProtocol.Op.Read ? header : [.. header, .. Chunk(0)], false);
                }
            case Case.OversizedChunk:
                {
                    int[] lengths = [(int)a.Length + 1, int.MaxValue, -1, int.MinValue, (int)a.Length + 1 + a.Pick % 100_000];
                    return ([.. Header(DataPlaneProtocol.Op.Write, Device.Index, Export.Value, Key, a.Offset, a.Length), .. Chunk(lengths[a.Pick % lengths.Length])], false);
                }
            case Case.ClientErrorChunk:
                {
                    var text = Encoding.UTF8.GetBytes("the importer gave up");
                    return ([.. Header(DataPlaneProtocol.Op.Write, Device.Index, Export.Value, Key, a.Offset, a.Length),
                    .. Chunk(text.Length, (uint)ErrorCode.EIO), .. text], false);
                }
            default: // a write that announces bytes and sends none
                return ([.. Header(DataPlaneProtocol.Op.Write, Device.Index, Export.Value, Key, a.Offset, a.Length), .. Chunk(0)], false);
        }
    }

    private static (long Offset, long Length) OutOfRange(Attempt a)
    {
        var (offset, length) = a.Pick % 2 == 0 ? (BadOffsets[a.Pick / 2 % BadOffsets.Length], a.Length) : (a.Offset, BadLengths[a.Pick / 2 % BadLengths.Length]);
        return (offset, offset == Size ? 1 : length); // at the end, one byte is one too many
    }

    private static byte[] NoMagic(byte[] bytes)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes) == DataPlaneProtocol.Magic) bytes[0] ^= 1;
        return bytes;
    }

    [Fact]
    public async Task Bad_frames_are_refused_or_closed_and_the_server_keeps_serving_the_right_bytes()
    {
        var answered = new Dictionary<ErrorCode, int>();
        int closed = 0, reusedAfterRefusal = 0;
        var clock = Stopwatch.StartNew();

        await Attempts.SampleAsync(async attempt =>
        {
            var (promisedCode, keepsOpen) = Promise(attempt);
            var (bytes, shutDown) = Send(attempt);
            using var cancel = new CancellationTokenSource(PerConnection);
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _server.Port), cancel.Token);
            await socket.SendAsync(bytes, SocketFlags.None, cancel.Token);
            if (shutDown) socket.Shutdown(SocketShutdown.Send);

            var answer = await ReceiveAnswerAsync(socket, cancel.Token);
            if (promisedCode is { } code)
            {
                // A long garbage request may reset the connection before its refusal is read; anything that arrives is the refusal.
                if (!(attempt.Case == Case.GarbageLong && answer is null))
                {
                    Assert.True(answer is not null, $"{attempt.Case}: no answer, {code} expected");
                    Assert.Equal(code, answer.Code);
                    Assert.True(answer.Message.Length > 10 && answer.Message.Contains(' '), $"{attempt.Case}: '{answer.Message}' is not a sentence");
                    lock (answered) answered[code] = answered.GetValueOrDefault(code) + 1;
                }
            }
            else Assert.True(answer is null, $"{attempt.Case}: answered {answer}, a silent close expected");

            if (keepsOpen)
            {
                // The refusal left the framing in step: a valid read on the same connection gets the right bytes.
                var (offset, length) = (attempt.Offset, (int)attempt.Length);
                await socket.SendAsync(Header(DataPlaneProtocol.Op.Read, Device.Index, Export.Value, Key, offset, length), SocketFlags.None, cancel.Token);
                Assert.Equal(_expected.AsSpan((int)offset, length).ToArray(), await ReceiveDataAsync(socket, cancel.Token));
                Interlocked.Increment(ref reusedAfterRefusal);
            }
            else
            {
                Assert.True(await IsClosedAsync(socket, cancel.Token), $"{attempt.Case}: the server kept the connection open");
                Interlocked.Increment(ref closed);
            }

            // And a well-formed transfer from another connection is still served, with the right bytes.
            var at = attempt.Pick % (Size - 8192);
            var back = new byte[8192];
            await _client.Client.ReadAsync(_remote, at, back.Length, (o, n) => back.AsMemory((int)o, n), cancel.Token);
            Assert.Equal(_expected.AsSpan(at, back.Length).ToArray(), back);
        }, iter: Iterations, threads: 2, writeLine: output.WriteLine).WaitAsync(Budget * 2);

        output.WriteLine($"{string.Join(", ", answered.Select(p => $"{p.Value} {p.Key}"))}; {closed} closed, {reusedAfterRefusal} reused after a refusal; " +
                         $"{clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(clock.Elapsed < Budget, $"{Iterations} connections took {clock.Elapsed.TotalSeconds:0.0} s, over the budget of {Budget.TotalSeconds} s");
        Assert.Equal(Iterations, closed + reusedAfterRefusal);
        Assert.Contains(ErrorCode.EINVAL, answered.Keys);
        Assert.Contains(ErrorCode.EPERM, answered.Keys);
        Assert.Contains(ErrorCode.ENOENT, answered.Keys);
        // Nothing a refused request sent reached the memory, and no refused transfer kept a pin on it.
        Assert.Equal(SHA256.HashData(_expected), SHA256.HashData(Snapshot()));
        Assert.Equal(1, _block.References);
    }

    private unsafe byte[] Snapshot() => new Span<byte>(_block.Pointer, Size).ToArray();

    /// <summary>The error chunk the server answers, or null when it closes (or resets) the connection without one.</summary>
    private static async Task<FabricError?> ReceiveAnswerAsync(Socket socket, CancellationToken cancel)
    {
        var header = new byte[DataPlaneProtocol.ChunkHeaderBytes];
        try
        {
            if (!await ReceiveExactlyAsync(socket, header, cancel)) return null;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return null; }
        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        var status = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
        Assert.True(status != 0, $"a data chunk of {length} bytes where a refusal was due");
        Assert.InRange(length, 1, 64 * 1024);
        var text = new byte[length];
        Assert.True(await ReceiveExactlyAsync(socket, text, cancel), "the refusal's sentence was cut short");
        return new FabricError((ErrorCode)status, Encoding.UTF8.GetString(text));
    }

    private static async Task<byte[]> ReceiveDataAsync(Socket socket, CancellationToken cancel)
    {
        var data = new List<byte>();
        var header = new byte[DataPlaneProtocol.ChunkHeaderBytes];
        while (true)
        {
            Assert.True(await ReceiveExactlyAsync(socket, header, cancel), "the read was cut short");
            var length = BinaryPrimitives.ReadInt32LittleEndian(header);
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4)));
            if (length == 0) return [.. data];
            var chunk = new byte[length];
            Assert.True(await ReceiveExactlyAsync(socket, chunk, cancel), "a chunk was cut short");
            data.AddRange(chunk);
        }
    }

    private static async Task<bool> IsClosedAsync(Socket socket, CancellationToken cancel)
    {
        try { return await socket.ReceiveAsync(new byte[1], SocketFlags.None, cancel) == 0; }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return true; }
    }

    /// <summary>False when the peer closed before <paramref name="target"/> was full.</summary>
    private static async Task<bool> ReceiveExactlyAsync(Socket socket, Memory<byte> target, CancellationToken cancel)
    {
        while (target.Length > 0)
        {
            var read = await socket.ReceiveAsync(target, SocketFlags.None, cancel);
            if (read == 0) return false;
            target = target[read..];
        }
        return true;
    }
}
