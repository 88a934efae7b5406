using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;

namespace Fabric.Core.Security;

/// <summary>
/// TLS for Akka remoting, with mutual authentication: this process's certificate and key (issued by the cluster's CA,
/// <c>fabric certs issue NAME</c>) and the CA it trusts (<see cref="ClusterTrust"/>). Both ends of every connection
/// — node to node, client to node — present a certificate and check the other's; a process without one signed by
/// the cluster's CA, or with a revoked one, cannot associate, so it can neither join nor send to any actor.
/// </summary>
public sealed class ClusterTls
{
    /// <summary>The file beside a CA certificate that lists revoked serial numbers, one per line.</summary>
    public const string RevokedFile = "revoked";

    /// <summary>What turns TLS on in the remoting's configuration (the certificate comes with <see cref="Setup"/>).</summary>
    public const string Hocon = "akka.remote.dot-netty.tcp.enable-ssl = true";

    public ClusterTls(X509Certificate2 identity, ClusterTrust trust)
    {
        if (!identity.HasPrivateKey) throw new ArgumentException($"certificate '{identity.Subject}' comes without its private key");
        (Identity, Trust) = (identity, trust);
    }

    public X509Certificate2 Identity { get; }
    public ClusterTrust Trust { get; }

    /// <summary>
    /// Loads PEM files: the certificate and its key, the CA's certificate, and the revoked list (default: beside the
    /// CA). Missing or unreadable files, a key that is not the certificate's, or a certificate the CA did not sign →
    /// <see cref="ArgumentException"/> naming the file.
    /// </summary>
    public static ClusterTls Load(string certificatePath, string keyPath, string caPath, string? revokedPath = null)
    {
        foreach (var (path, what) in new[] { (certificatePath, "--tls-cert"), (keyPath, "--tls-key"), (caPath, "--tls-ca") })
            if (!File.Exists(path)) throw new ArgumentException($"{what} {path}: there is no such file");
        X509Certificate2 identity;
        try { identity = LoadIdentity(certificatePath, keyPath); }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new ArgumentException($"--tls-cert {certificatePath} with --tls-key {keyPath}: not a PEM certificate and its private key ({e.Message})");
        }
        ClusterTrust trust;
        try { trust = ClusterTrust.Load(caPath, revokedPath); }
        catch (System.Security.Cryptography.CryptographicException e) { throw new ArgumentException($"--tls-ca {caPath}: not a PEM certificate ({e.Message})"); }
        if (trust.Refusal(identity) is { } refusal) throw new ArgumentException($"--tls-cert {certificatePath}: {refusal}");
        return new ClusterTls(identity, trust);
    }

    /// <summary>A certificate and its private key from PEM files, re-imported as PKCS#12 so that SslStream can use the key on every platform.</summary>
    public static X509Certificate2 LoadIdentity(string certificatePath, string keyPath)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>The remoting's TLS: this certificate, peers' certificates required and checked by <see cref="ClusterTrust"/>.</summary>
    public DotNettySslSetup Setup() =>
        new(Identity, suppressValidation: false, requireMutualAuthentication: true, validateCertificateHostname: false, customValidator: Validate);

    private bool Validate(X509Certificate2? certificate, X509Chain? chain, string remotePeer, SslPolicyErrors errors, ILoggingAdapter log)
    {
        // The system's verdict (errors) knows nothing of the cluster's CA: the cluster's trust decides alone.
        if (Trust.Refusal(certificate) is not { } refusal) return true;
        log.Warning("TLS: refused {0}: {1}", remotePeer, refusal);
        return false;
    }
}
