using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Fabric.Core;
using Fabric.Core.Jobs;
using Fabric.Core.Client;
using Fabric.Core.Commands;
using Fabric.Node.Cluster;
using Fabric.Node.Security;

namespace Fabric.Node.Cli;

/// <summary>
/// <c>fabric check</c>: a client process (not a cluster member) that connects to one node, opens every device of the
/// cluster, runs kernels on each and checks the results against the host. With <c>--hold</c> it keeps its contexts
/// and memory until it is stopped — the way to watch the fabric release a client's resources when it dies.
/// </summary>
public static class CheckCommand
{
    public static Command Build()
    {
        var connect = new Option<string>("--connect") { Description = "host:port of any node's Akka endpoint. Default 127.0.0.1:4053.", DefaultValueFactory = _ => "127.0.0.1:4053" };
        var bytes = new Option<string>("--bytes") { Description = "Device memory to use on each device, e.g. 4MiB. Default 4MiB.", DefaultValueFactory = _ => "4MiB" };
        var hold = new Option<bool>("--hold") { Description = "Keep the contexts and memory after the checks until Ctrl-C or SIGTERM (or a kill)." };
        var command = new Command("check",
            "Connects to the cluster as a client, opens every device, runs fill/add/scale/checksum kernels on each and checks the results on the host. Exits 0 when all pass.");
        command.Options.Add(connect);
        command.Options.Add(bytes);
        command.Options.Add(hold);
        var tlsCert = new Option<string>("--tls-cert") { Description = "This client's certificate (PEM), issued by the cluster's CA, for nodes that use TLS (their --tls-*). Env FABRIC_TLS_CERT." };
        var tlsKey = new Option<string>("--tls-key") { Description = "The private key (PEM) of --tls-cert. Env FABRIC_TLS_KEY." };
        var tlsCa = new Option<string>("--tls-ca") { Description = "The cluster's CA certificate (PEM). Env FABRIC_TLS_CA." };
        var insecure = new Option<bool>("--insecure") { Description = "Connects over plain TCP, to nodes started with --insecure. Without it the client needs --tls-*, or finds client.crt, client.key and ca.crt in .fabric/certs. Env FABRIC_INSECURE=1." };
        command.Options.Add(tlsCert);
        command.Options.Add(tlsKey);
        command.Options.Add(tlsCa);
        command.Options.Add(insecure);
        command.SetAction(async (parse, cancel) =>
        {
            long size;
            try { NodeOptions.ParseEndpoint(parse.GetValue(connect)!, "--connect"); }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"fabric check: {e.Message} (e.g. 127.0.0.1:4053)");
                return 2;
            }
            try { size = NodeOptions.ParseSize(parse.GetValue(bytes)!); }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"fabric check: --bytes: {e.Message}");
                return 2;
            }
            Fabric.Core.Security.ClusterTls? tls;
            try { tls = Tls(parse.GetValue(tlsCert), parse.GetValue(tlsKey), parse.GetValue(tlsCa), parse.GetValue(insecure), Environment.GetEnvironmentVariable); }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"fabric check: {e.Message}");
                return 2;
            }
            return await RunAsync(parse.GetValue(connect)!, size, parse.GetValue(hold), Console.Out, cancel, tls);
        });
        return command;
    }

    /// <summary>
    /// A client's TLS from the flags, else FABRIC_TLS_*, else client.crt, client.key and ca.crt in
    /// <paramref name="certificates"/> (default .fabric/certs); null (plain TCP) only when <paramref name="insecure"/>
    /// (or FABRIC_INSECURE) asks for it. Partial, missing or conflicting choices → <see cref="ArgumentException"/>.
    /// </summary>
    public static Fabric.Core.Security.ClusterTls? Tls(string? cert, string? key, string? ca, bool insecure, Func<string, string?> environment,
        string certificates = ClusterCertificates.DefaultDirectory)
    {
        cert ??= environment("FABRIC_TLS_CERT");
        key ??= environment("FABRIC_TLS_KEY");
        ca ??= environment("FABRIC_TLS_CA");
        insecure |= environment("FABRIC_INSECURE") is "1" or "true";
        if (cert is null && key is null && ca is null)
        {
            if (insecure) return null;
            (cert, key, ca) = ClusterCertificates.Find(certificates, ClusterCertificates.ClientName) ?? throw new ArgumentException(
                $"no client certificate: give --tls-cert, --tls-key and --tls-ca (fabric certs issue {ClusterCertificates.ClientName} writes them to {certificates}, " +
                "where they are found by themselves), or --insecure for nodes that run plain TCP");
        }
        else if (insecure)
            throw new ArgumentException($"--insecure asks for plain TCP, but --tls-cert {cert} asks for TLS: give one of them");
        if (cert is null || key is null || ca is null)
            throw new ArgumentException("TLS needs --tls-cert, --tls-key and --tls-ca together (or FABRIC_TLS_CERT, FABRIC_TLS_KEY, FABRIC_TLS_CA)");
        return Fabric.Core.Security.ClusterTls.Load(cert, key, ca);
    }

    public static async Task<int> RunAsync(string endpoint, long bytes, bool hold, TextWriter output, CancellationToken cancel,
        Fabric.Core.Security.ClusterTls? tls = null)
    {
        using var system = FabricClientSystem.Create(tls: tls);
        try
        {
            await using var client = await FabricClient.ConnectAsync(system, endpoint, cancel: cancel);
            var devices = await client.ListDevicesAsync(cancel);
            output.WriteLine($"connected to {endpoint}: {devices.Count} devices on {devices.Select(d => d.Id.Node).Distinct().Count()} nodes");
            var failures = 0;
            var count = (int)(Math.Max(bytes, 4096) / 4);
            foreach (var device in devices)
            {
                var clock = Stopwatch.StartNew();
                var ok = await CheckDeviceAsync(client, device.Id, count, cancel);
                if (!ok) failures++;
                output.WriteLine($"  {device.Id}: {(ok ? "ok" : "WRONG RESULT")} ({count * 4L >> 10} KiB, {clock.Elapsed.TotalMilliseconds:0} ms)");
            }
            output.WriteLine(failures == 0 ? $"all {devices.Count} devices computed the host's results" : $"{failures} devices computed wrong results");
            if (hold)
            {
                output.WriteLine($"holding {devices.Count} contexts; stop this process to release them");
                output.Flush();
                await Task.Delay(Timeout.Infinite, cancel).ContinueWith(_ => { }, TaskScheduler.Default);
            }
            return failures == 0 ? 0 : 1;
        }
        catch (FabricException e)
        {
            Console.Error.WriteLine($"fabric check: {e.Error}");
            return 1;
        }
        finally
        {
            await system.Terminate();
        }
    }

    /// <summary>Opens the device, computes dst = 3·(a + b) and a CRC-32C of it, and compares with the host.</summary>
    private static async Task<bool> CheckDeviceAsync(FabricClient client, DeviceId device, int count, CancellationToken cancel)
    {
        var context = await client.OpenAsync(device, cancel); // closed by the client on exit, or released when it dies
        var space = await context.CreateAddressSpaceAsync(cancel);
        await context.AttachAsync(space, cancel);
        var random = new Random(device.Index + 17 * device.Node.Length);
        var a = Enumerable.Range(0, count).Select(_ => (float)random.NextDouble()).ToArray();
        var b = Enumerable.Range(0, count).Select(_ => (float)random.NextDouble()).ToArray();
        var (_, iovaA) = await Upload(context, space, a, cancel);
        var (_, iovaB) = await Upload(context, space, b, cancel);
        var bufOut = await context.AllocateAsync(count * 4L + 4096, cancel: cancel);
        var iovaOut = await context.MapAsync(space, bufOut, Access.ReadWrite, cancel: cancel);
        await context.RunAsync(new CommandBufferBuilder()
            .Add(iovaOut, iovaA, iovaB, (ulong)count)
            .Scale(iovaOut, iovaOut, (ulong)count, 3f)
            .Checksum(iovaOut + (ulong)count * 4, iovaOut, (ulong)count * 4)
            .Build(), TimeSpan.FromSeconds(30), cancel: cancel);
        var result = await context.ReadAsync(bufOut, 0, count * 4, cancel);
        var crc = BitConverter.ToUInt32(await context.ReadAsync(bufOut, count * 4L, 4, cancel));
        var expected = new float[count];
        for (var i = 0; i < count; i++) expected[i] = 3f * (a[i] + b[i]);
        var expectedBytes = MemoryMarshal.AsBytes(expected.AsSpan());
        return expectedBytes.SequenceEqual(result) && crc == JobReference.Crc32C(expectedBytes);
    }

    private static async Task<(BufferHandle, Iova)> Upload(DeviceContext context, AddressSpaceId space, float[] data, CancellationToken cancel)
    {
        var handle = await context.AllocateAsync(data.Length * 4L, cancel: cancel);
        var iova = await context.MapAsync(space, handle, Access.ReadWrite, cancel: cancel);
        await context.WriteAsync(handle, 0, MemoryMarshal.AsBytes(data.AsSpan()).ToArray(), cancel);
        return (handle, iova);
    }
}
