using System.Net;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;
using Fabric.Core.Gateway;
using Fabric.Core.Security;
using Fabric.Node.Security;
using Fabric.Tests.Cluster;
using Xunit.Abstractions;

namespace Fabric.Tests.Security;

/// <summary>
/// TLS with mutual authentication on Akka remoting: the cluster's CA (fabric certs) issues certificates; a node with
/// TLS admits a node or client whose certificate the CA signed, and no process without one, with another CA's, or
/// with a revoked one — they can neither join nor reach any actor, and the node's devices see nothing of them.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class TlsTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"fabric-tls-{Guid.NewGuid():N}");
    private string Ca => Path.Combine(_root, "ca");
    private string OtherCa => Path.Combine(_root, "other-ca");

    [Fact]
    public void Issued_certificates_chain_to_their_ca_and_a_foreign_or_revoked_one_is_refused()
    {
        using var ca = ClusterCertificates.InitAuthority(Ca, "test");
        using var node = ClusterCertificates.Issue(Ca, "n1", ["n1.example"], [IPAddress.Parse("10.1.2.3")]);
        ClusterCertificates.InitAuthority(OtherCa, "other").Dispose();
        using var stranger = ClusterCertificates.Issue(OtherCa, "stranger", [], []);
        using var client = ClusterCertificates.Issue(Ca, "client", [], []);

        var trust = ClusterTrust.Load(ClusterCertificates.CertificatePath(Ca, "ca"));
        Assert.Null(trust.Refusal(node));
        Assert.Null(trust.Refusal(client));
        Assert.Contains("is not signed by the cluster's CA 'CN=test Fabric CA, O=Fabric'", trust.Refusal(stranger));
        Assert.Equal("it presented no certificate", trust.Refusal(null));
        Assert.Null(ClusterTrust.Load(ClusterCertificates.CertificatePath(OtherCa, "ca")).Refusal(stranger));

        var serial = ClusterCertificates.Revoke(Ca, "client");
        Assert.Equal(client.SerialNumber, serial);
        var after = ClusterTrust.Load(ClusterCertificates.CertificatePath(Ca, "ca"));
        Assert.Equal($"certificate 'CN=client, O=Fabric' (serial {serial}) is revoked", after.Refusal(client));
        Assert.Null(after.Refusal(node));

        // What the certificate is for: both ends of a connection, its names and addresses; signed by the CA.
        var eku = node.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Select(o => o.Value);
        Assert.Equal(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], eku);
        var san = node.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(["n1", "localhost", "n1.example"], san.EnumerateDnsNames());
        Assert.Equal([IPAddress.Loopback, IPAddress.Parse("10.1.2.3")], san.EnumerateIPAddresses());
        Assert.Equal(ca.Subject, node.Issuer);
        // Keys are the owner's alone; a name is issued once; a key that is not the certificate's is refused on load.
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ClusterCertificates.KeyPath(Ca, "n1")));
        Assert.Throws<IOException>(() => ClusterCertificates.Issue(Ca, "n1", [], []));
        Assert.Throws<IOException>(() => ClusterCertificates.InitAuthority(Ca, "again"));
        var mismatch = Assert.Throws<ArgumentException>(() => ClusterTls.Load(ClusterCertificates.CertificatePath(Ca, "n1"),
            ClusterCertificates.KeyPath(Ca, "client"), ClusterCertificates.CertificatePath(Ca, "ca")));
        Assert.StartsWith($"--tls-cert {ClusterCertificates.CertificatePath(Ca, "n1")} with --tls-key", mismatch.Message);
        var foreign = Assert.Throws<ArgumentException>(() => ClusterTls.Load(ClusterCertificates.CertificatePath(OtherCa, "stranger"),
            ClusterCertificates.KeyPath(OtherCa, "stranger"), ClusterCertificates.CertificatePath(Ca, "ca")));
        Assert.Contains("is not signed by the cluster's CA", foreign.Message);
    }

    [Fact]
    public async Task A_tls_node_admits_the_cas_node_and_client_and_no_process_without_a_valid_certificate()
    {
        ClusterCertificates.InitAuthority(Ca, "test").Dispose();
        foreach (var name in new[] { "n1", "n2", "client", "revoked" }) ClusterCertificates.Issue(Ca, name, [], []).Dispose();
        ClusterCertificates.Revoke(Ca, "revoked");
        ClusterCertificates.InitAuthority(OtherCa, "other").Dispose();
        ClusterCertificates.Issue(OtherCa, "n3", [], []).Dispose();
        ClusterCertificates.Issue(OtherCa, "stranger", [], []).Dispose();

        using var n1 = Node("n1", Ca, seed: null);
        var first = await n1.WaitForReadyAsync(Ready("n1"), TimeSpan.FromSeconds(60));
        Assert.StartsWith("akka.ssl.tcp://fabric@127.0.0.1:", first.Address);
        using var gateway = new GatewayClient(first.Gateway!);
        var before = await gateway.LocalDevicesAsync(CancellationToken.None);

        // Nodes: one of the CA joins; one of another CA and one without TLS never do.
        using var n2 = Node("n2", Ca, seed: first.Port);
        using var n3 = Node("n3", OtherCa, seed: first.Port);
        using var n4 = Node("n4", caDirectory: null, seed: first.Port);
        await n2.WaitForReadyAsync(Ready("n2"), TimeSpan.FromSeconds(60));

        // Clients: the CA's gets in and sees the devices; the others' every request finds no node.
        var endpoint = $"127.0.0.1:{first.Port}";
        var quick = new FabricClientOptions { RequestTimeout = TimeSpan.FromSeconds(3) };
        using (var trusted = FabricClientSystem.Create(name: "trusted", tls: Tls(Ca, "client", Ca)))
        {
            var client = await FabricClient.ConnectAsync(trusted, endpoint, quick);
            var devices = await client.ListDevicesAsync();
            Assert.Contains(devices, d => d.Id.Node == "n1");
            Assert.Contains(devices, d => d.Id.Node == "n2");
        }
        // The CLI's client too: fabric check with the CA's certificate computes on every device; without one it finds no node.
        using (var check = FabricProcess.Start("check", "check", "--connect", endpoint, "--tls-cert", ClusterCertificates.CertificatePath(Ca, "client"),
                   "--tls-key", ClusterCertificates.KeyPath(Ca, "client"), "--tls-ca", ClusterCertificates.CertificatePath(Ca, "ca")))
        {
            Assert.Equal(0, await check.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains("all 2 devices computed the host's results", check.Output);
        }
        var before2 = await gateway.LocalDevicesAsync(CancellationToken.None);
        var refused = new Dictionary<string, FabricError>();
        foreach (var (label, tls) in new (string, ClusterTls?)[]
                 {
                     ("plain TCP", null),
                     ("another CA's certificate", Tls(OtherCa, "stranger", OtherCa)),
                     ("a revoked certificate", RevokedClient()),
                 })
        {
            using var system = FabricClientSystem.Create(name: "untrusted", tls: tls);
            var error = await Assert.ThrowsAsync<FabricException>(() => FabricClient.ConnectAsync(system, endpoint, quick));
            refused[label] = error.Error;
            // Nor can it reach any actor by path: an Identify of the node's device manager goes unanswered.
            var protocol = ((ExtendedActorSystem)system).Provider.DefaultAddress.Protocol;
            var identity = await system.ActorSelection($"{protocol}://fabric@127.0.0.1:{first.Port}/user/devices")
                .Ask<ActorIdentity>(new Identify(1), TimeSpan.FromSeconds(3)).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null);
            Assert.Null(identity?.Subject);
        }

        await Task.Delay(TimeSpan.FromSeconds(3)); // the strangers' join attempts go on meanwhile
        using (var plainCheck = FabricProcess.Start("plain-check", "check", "--connect", endpoint))
        {
            Assert.Equal(1, await plainCheck.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains("ENODEV", plainCheck.Output + plainCheck.Errors);
        }
        var nodes = await gateway.NodesAsync(CancellationToken.None);
        var after = await gateway.LocalDevicesAsync(CancellationToken.None);
        output.WriteLine(string.Join("\n", refused.Select(r => $"{r.Key}: {r.Value}")));
        output.WriteLine($"n1:\n{n1.Output}\nn3:\n{n3.Output}\nn4:\n{n4.Output}");
        Assert.Equal(["n1", "n2"], nodes.Nodes.Select(n => n.Node).Order());
        Assert.All(refused.Values, e => Assert.Equal(ErrorCode.ENODEV, e.Code));
        Assert.False(File.Exists(Ready("n3")), "a node of another CA became Up");
        Assert.False(File.Exists(Ready("n4")), "a node without TLS became Up");
        Assert.Contains("TLS: refused", n1.Output);
        Assert.Contains("is revoked", n1.Output);
        // The refused clients left no trace on the devices: contexts, memory and submissions are as before.
        Assert.True(before2.Single().CompletedSubmissions > before.Single().CompletedSubmissions, "fabric check ran nothing on n1");
        Assert.Equal(before2.Select(d => (d.Id, d.OpenContexts, d.MemoryUsed, d.CompletedSubmissions)),
            after.Select(d => (d.Id, d.OpenContexts, d.MemoryUsed, d.CompletedSubmissions)));
    }

    private ClusterTls RevokedClient() => Tls(Ca, "revoked", Ca, checkOwnCertificate: false);

    /// <summary>A process's TLS from the CA directory's files. A revoked certificate is loaded without the check a node makes of its own.</summary>
    private static ClusterTls Tls(string directory, string name, string caDirectory, bool checkOwnCertificate = true)
    {
        if (checkOwnCertificate)
            return ClusterTls.Load(ClusterCertificates.CertificatePath(directory, name), ClusterCertificates.KeyPath(directory, name),
                ClusterCertificates.CertificatePath(caDirectory, "ca"));
        var identity = ClusterTls.LoadIdentity(ClusterCertificates.CertificatePath(directory, name), ClusterCertificates.KeyPath(directory, name));
        return new ClusterTls(identity, new ClusterTrust(X509CertificateLoader.LoadCertificateFromFile(ClusterCertificates.CertificatePath(caDirectory, "ca")), []));
    }

    private string Ready(string name) => Path.Combine(_root, name + ".ready.json");

    private FabricProcess Node(string name, string? caDirectory, int? seed)
    {
        List<string> args = ["node", "--name", name, "--port", "0", "--http-port", "0", "--ready-file", Ready(name), "--devices", "1",
            "--device-memory", "16MiB", "--data-dir", Path.Combine(_root, name), "--sqlite", Path.Combine(_root, "fabric.db")];
        if (seed is { } port) args.AddRange(["--seeds", $"127.0.0.1:{port}"]);
        if (caDirectory is not null) args.AddRange(ClusterCertificates.TlsArguments(caDirectory, name));
        return FabricProcess.Start(name, [.. args]);
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }
}
