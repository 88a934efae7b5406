using System.Buffers.Binary;
using Fabric.Core.Jobs;

namespace Fabric.Tests.Jobs;

/// <summary>Jobs the job tests share.</summary>
internal static class JobSamples
{
    /// <summary>The three-stage example of Fabric.Core/Jobs/README.md, written with the builder.</summary>
    public static JobSpec ThreeStage() => new JobBuilder("three-stage")
        .RandomInput("a", 1024, seed: 1, scale: 2)
        .RandomInput("b", 1024, seed: 2, scale: 10)
        .Buffer("u", 4096).Buffer("v", 4096)
        .Output("s", 4096).Output("total", 4).Output("crc", 4)
        .Task("left", t => t.Axpy("u", "a", "b", 2f))
        .Task("right", t => t.Scale("v", "b", 0.5f), new TaskNeeds(0, null, "fabric-sim"))
        .Task("combine", t => t.Add("s", "u", "v"))
        .Task("summarize", t => t.ReduceSum("total", "s").Checksum("crc", "s"), new TaskNeeds(1 << 20, null, null, Prefer: "n2"))
        .Build();

    /// <summary>
    /// A diamond: <c>top</c> reads the input, <c>left</c> and <c>right</c> read <c>top</c>'s result, <c>bottom</c>
    /// joins them. Declared out of order on purpose.
    /// </summary>
    public static JobSpec Diamond() => new JobBuilder("diamond")
        .Ramp("x", 16)
        .Buffer("t", 64).Buffer("l", 64).Buffer("r", 64)
        .Output("d", 64)
        .Task("bottom", t => t.Add("d", "l", "r"))
        .Task("left", t => t.Scale("l", "t", 2f))
        .Task("top", t => t.Copy("t", "x"))
        .Task("right", t => t.Scale("r", "t", 3f))
        .Build();

    public static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return bytes;
    }

    public static float[] ToFloats(byte[] bytes)
    {
        var values = new float[bytes.Length / 4];
        for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4));
        return values;
    }
}
