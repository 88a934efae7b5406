using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Fabric.Devices.Internal.Commands;

namespace Fabric.Tests.Commands;

/// <summary>
/// Test-only device memory: one pinned managed array mapped at IOVA <see cref="BaseIova"/>. Translate refuses anything
/// outside the array, so a kernel asking for a wrong range fails loudly instead of corrupting the test process.
/// </summary>
internal sealed unsafe class PinnedMemoryView : IDeviceMemoryView
{
    public PinnedMemoryView(ulong baseIova, int size, int seed = 1)
    {
        BaseIova = baseIova;
        Bytes = GC.AllocateArray<byte>(size, pinned: true);
        new Random(seed).NextBytes(Bytes);
    }

    public ulong BaseIova { get; }
    public byte[] Bytes { get; }

    /// <summary>Every range translated so far.</summary>
    public List<(ulong Iova, ulong Length)> Translations { get; } = [];

    /// <summary>Runs on every translation, e.g. to cancel a token mid-command.</summary>
    public Action? OnTranslate { get; set; }

    public byte* Translate(ulong iova, ulong length)
    {
        if (iova < BaseIova || length > (ulong)Bytes.Length || iova - BaseIova > (ulong)Bytes.Length - length)
            throw new ArgumentOutOfRangeException(nameof(iova), $"[0x{iova:x}, +{length}) is outside the test view");
        Translations.Add((iova, length));
        OnTranslate?.Invoke();
        return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(Bytes)) + (iova - BaseIova);
    }

    public int OffsetOf(ulong iova) => checked((int)(iova - BaseIova));

    public float[] ReadFloats(ulong iova, int count)
    {
        var result = new float[count];
        for (var i = 0; i < count; i++)
            result[i] = BinaryPrimitives.ReadSingleLittleEndian(Bytes.AsSpan(OffsetOf(iova) + 4 * i));
        return result;
    }

    public void WriteFloats(ulong iova, float[] values)
    {
        for (var i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(Bytes.AsSpan(OffsetOf(iova) + 4 * i), values[i]);
    }
}

/// <summary>Test-only memory view over one native allocation, for ranges larger than a managed array.</summary>
internal sealed unsafe class NativeMemoryView(ulong baseIova, ulong size) : IDeviceMemoryView, IDisposable
{
    public byte* Base { get; private set; } = (byte*)NativeMemory.Alloc((nuint)size);

    public byte* Translate(ulong iova, ulong length)
    {
        if (iova < baseIova || length > size || iova - baseIova > size - length)
            throw new ArgumentOutOfRangeException(nameof(iova), $"[0x{iova:x}, +{length}) is outside the test view");
        return Base + (iova - baseIova);
    }

    public void Dispose()
    {
        NativeMemory.Free(Base);
        Base = null;
    }
}
