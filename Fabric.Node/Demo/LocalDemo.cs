using System.Diagnostics;
using System.Runtime.InteropServices;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Core.Protocol;
using Fabric.Devices;
using Fabric.Node.Hosting;
using Spectre.Console;

namespace Fabric.Node.Demo;

/// <summary>
/// <c>fabric demo</c>: two devices in this process, a context on each, kernels on both, a dma-buf handed from one
/// device to the other with a fence between them, every result checked against a host computation, and device
/// memory shown back at zero after close. Returns the process exit code.
/// </summary>
public static class LocalDemo
{
    private const int N = 1 << 20;          // floats per vector: 4 MiB
    private const int M = 64;               // matrices are M×M
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(IAnsiConsole console, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var checks = new DemoChecks(console);

        DemoText.Step(console, 1, "Start a node with two emulated devices (64 MiB each, separate IOMMU groups)");
        var profile = new DeviceProfile { MemoryBytes = 64L << 20, Queues = 2 };
        await using var node = InProcessNode.Start("local", [profile, profile]);
        var dev0 = new DeviceId("local", 0);
        var dev1 = new DeviceId("local", 1);
        DemoText.ShowDevices(console, await node.Client.ListDevicesAsync(cancel));

        DemoText.Step(console, 2, "Open a context on each device, each with its own address space");
        var ctx0 = await node.Client.OpenAsync(dev0, cancel);
        var ctx1 = await node.Client.OpenAsync(dev1, cancel);
        var as0 = await ctx0.CreateAddressSpaceAsync(cancel);
        var as1 = await ctx1.CreateAddressSpaceAsync(cancel);
        await ctx0.AttachAsync(as0, cancel);
        await ctx1.AttachAsync(as1, cancel);
        console.MarkupLine($"  {ctx0} uses {as0}, {ctx1} uses {as1}");

        DemoText.Step(console, 3, $"On {dev0}: write two vectors of {N:N0} floats, then C = 2·(A + B) in one submission");
        var random = new Random(42);
        var a = RandomFloats(random, N);
        var b = RandomFloats(random, N);
        var (bufA, iovaA) = await AllocMapWrite(ctx0, as0, a, cancel);
        var (bufB, iovaB) = await AllocMapWrite(ctx0, as0, b, cancel);
        var bufC = await ctx0.AllocateAsync(N * 4L, cancel: cancel);
        var iovaC = await ctx0.MapAsync(as0, bufC, Access.ReadWrite, cancel: cancel);
        var produce = new CommandBufferBuilder()
            .Add(iovaC, iovaA, iovaB, N)
            .Scale(iovaC, iovaC, N, 2f)
            .SignalFence(0)
            .Build();
        var produced = await ctx0.SubmitAsync(produce, outFences: 1, cancel: cancel);
        console.MarkupLine($"  submitted: fence {produced.Fence}, out-fence {produced.OutFences[0]}");

        DemoText.Step(console, 4, $"Export C from {dev0} (read-only dma-buf) and import it on {dev1}: same memory, no copy");
        var exported = await ctx0.ExportAsync(bufC, Access.Read, cancel);
        var imported = await ctx1.ImportAsync(exported.Token, cancel);
        var iovaCOn1 = await ctx1.MapAsync(as1, imported.Handle, Access.Read, cancel: cancel);
        console.MarkupLine($"  {exported.Token} → {imported.Handle} in {ctx1} ({imported.Size:N0} bytes, {imported.Access}), mapped at 0x{iovaCOn1:x}");

        DemoText.Step(console, 5, $"On {dev1}: wait for {dev0}'s out-fence, then Y = 0.5·C + Y, sum(Y), CRC-32C(Y) and a {M}×{M} matmul");
        var y = Enumerable.Repeat(1f, N).ToArray();
        var (bufY, iovaY) = await AllocMapWrite(ctx1, as1, y, cancel);
        var weights = RandomFloats(random, M * M);
        var (_, iovaW) = await AllocMapWrite(ctx1, as1, weights, cancel);
        var bufOut = await ctx1.AllocateAsync(M * M * 4 + 64, cancel: cancel);
        var iovaOut = await ctx1.MapAsync(as1, bufOut, Access.ReadWrite, cancel: cancel);
        var consume = new CommandBufferBuilder()
            .WaitFence(0)
            .Axpy(iovaY, iovaCOn1, N, 0.5f)
            .ReduceSum(iovaOut + M * M * 4, iovaY, N)
            .Checksum(iovaOut + M * M * 4 + 8, iovaY, N * 4L)
            .MatMul(iovaOut, iovaCOn1, iovaW, M, M, M)
            .Build();
        var consumed = await ctx1.SubmitAsync(consume, inFences: [produced.OutFences[0]], cancel: cancel);
        var status = await ctx1.WaitAsync(consumed.Fence, Timeout, cancel);
        checks.Check($"{consumed.Fence}", status.State == FenceState.Completed, status.State == FenceState.Completed ? "signalled ok" : $"{status.State} {status.Error}");

        DemoText.Step(console, 6, "Check every result against the same computation on the host");
        var c = new float[N];
        for (var i = 0; i < N; i++) c[i] = 2f * (a[i] + b[i]);
        var deviceC = MemoryMarshal.Cast<byte, float>(await ctx0.ReadAsync(bufC, 0, N * 4, cancel)).ToArray();
        checks.Check("C = 2·(A + B) on " + dev0, Close(deviceC, c), $"max error {MaxError(deviceC, c):E2}");
        var yExpected = new float[N];
        for (var i = 0; i < N; i++) yExpected[i] = 0.5f * c[i] + 1f;
        var deviceY = MemoryMarshal.Cast<byte, float>(await ctx1.ReadAsync(bufY, 0, N * 4, cancel)).ToArray();
        checks.Check("Y = 0.5·C + Y on " + dev1 + " (reading C through the import)", Close(deviceY, yExpected), $"max error {MaxError(deviceY, yExpected):E2}");
        var tail = await ctx1.ReadAsync(bufOut, M * M * 4, 12, cancel);
        var sum = BitConverter.ToSingle(tail, 0);
        var expectedSum = yExpected.Sum(v => (double)v);
        checks.Check("sum(Y)", Math.Abs(sum - expectedSum) <= 1e-5 * Math.Abs(expectedSum), $"device {sum:G7}, host {expectedSum:G7}");
        var crc = BitConverter.ToUInt32(tail, 8);
        var expectedCrc = JobReference.Crc32C(MemoryMarshal.AsBytes(yExpected.AsSpan()));
        checks.Check("CRC-32C(Y)", crc == expectedCrc, $"device 0x{crc:x8}, host 0x{expectedCrc:x8}");
        var product = MemoryMarshal.Cast<byte, float>(await ctx1.ReadAsync(bufOut, 0, M * M * 4, cancel)).ToArray();
        var expectedProduct = MatMul(c, weights, M);
        checks.Check($"{M}×{M} matmul of C and W", Close(product, expectedProduct), $"max error {MaxError(product, expectedProduct):E2}");

        DemoText.Step(console, 7, $"Close {ctx0}, the exporter: C stays alive on {dev0} while {dev1} still imports it");
        await ctx0.CloseAsync(cancel);
        var afterExporterClose = await WaitForMemory(node.Client, dev0, used => used > 0, cancel);
        var stillReadable = MemoryMarshal.Cast<byte, float>(await ctx1.ReadAsync(imported.Handle, 0, 16, cancel)).ToArray();
        checks.Check($"{dev0} keeps C for the importer", afterExporterClose == N * 4L && stillReadable[0] == c[0],
            $"{afterExporterClose:N0} bytes still in use, first float {stillReadable[0]} (expected {c[0]})");

        DemoText.Step(console, 8, $"Close {ctx1}: the last importer detaches, and every byte goes back");
        await ctx1.CloseAsync(cancel);
        var used0 = await WaitForMemory(node.Client, dev0, used => used == 0, cancel);
        var used1 = await WaitForMemory(node.Client, dev1, used => used == 0, cancel);
        checks.Check("device memory back at zero", used0 == 0 && used1 == 0, $"{dev0}: {used0} bytes, {dev1}: {used1} bytes");
        DemoText.ShowDevices(console, await node.Client.ListDevicesAsync(cancel));

        console.MarkupLine(checks.Failures == 0
            ? $"[green]Demo finished in {clock.Elapsed.TotalSeconds:0.0} s: every result matched the host.[/]"
            : $"[red]Demo finished with {checks.Failures} failed checks.[/]");
        return checks.Failures == 0 ? 0 : 1;
    }

    private static async Task<(BufferHandle, ulong)> AllocMapWrite(DeviceContext context, AddressSpaceId space, float[] data, CancellationToken cancel)
    {
        var handle = await context.AllocateAsync(data.Length * 4L, cancel: cancel);
        var iova = await context.MapAsync(space, handle, Access.ReadWrite, cancel: cancel);
        await context.WriteAsync(handle, 0, MemoryMarshal.AsBytes(data.AsSpan()).ToArray(), cancel);
        return (handle, iova);
    }

    /// <summary>Reads a device's used memory until it satisfies <paramref name="done"/> or five seconds pass.</summary>
    private static async Task<long> WaitForMemory(FabricClient client, DeviceId device, Func<long, bool> done, CancellationToken cancel)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var used = (await client.GetDeviceInfoAsync(device, cancel)).MemoryUsed;
            if (done(used) || deadline.Elapsed > TimeSpan.FromSeconds(5)) return used;
            await Task.Delay(10, cancel);
        }
    }

    private static float[] RandomFloats(Random random, int count)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    private static float[] MatMul(float[] a, float[] b, int m)
    {
        var c = new float[m * m];
        for (var i = 0; i < m; i++)
        for (var j = 0; j < m; j++)
        {
            double s = 0;
            for (var k = 0; k < m; k++) s += a[i * m + k] * b[k * m + j];
            c[i * m + j] = (float)s;
        }
        return c;
    }

    private static bool Close(float[] actual, float[] expected) => MaxError(actual, expected) <= 1e-4;

    private static double MaxError(float[] actual, float[] expected)
    {
        double worst = actual.Length == expected.Length ? 0 : double.PositiveInfinity;
        for (var i = 0; i < Math.Min(actual.Length, expected.Length); i++)
            worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]) / Math.Max(1.0, Math.Abs(expected[i])));
        return worst;
    }
}
