using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Fabric.Core.Security;

namespace Fabric.Devices.DataPlane;

/// <summary>
/// The data plane's TLS: the same certificates as the remoting (<see cref="ClusterTls"/>), mutual authentication, TLS
/// 1.2 or 1.3. Both ends present their node's certificate and accept the other's only when the cluster's trust does
/// (<see cref="ClusterTrust.Refusal"/>): the system's verdict, which knows nothing of the cluster's CA, and host names
/// are not consulted, as for the remoting.
/// </summary>
internal static class DataPlaneTls
{
    /// <summary>How long a handshake may take, at either end, before the connection is dropped.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    private const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    public static SslServerAuthenticationOptions ServerOptions(ClusterTls tls) => new()
    {
        ServerCertificateContext = Context(tls),
        ClientCertificateRequired = true,
        EnabledSslProtocols = Protocols,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => tls.Trust.Refusal(AsX509Certificate2(certificate)) is null,
    };

    /// <summary>
    /// The options of a connection to <paramref name="host"/>; when the server's certificate is refused, why goes to
    /// <paramref name="refusal"/> so that the error can say it.
    /// </summary>
    public static SslClientAuthenticationOptions ClientOptions(ClusterTls tls, string host, StrongBox<string?> refusal) => new()
    {
        TargetHost = host,
        ClientCertificateContext = Context(tls),
        EnabledSslProtocols = Protocols,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            refusal.Value = tls.Trust.Refusal(AsX509Certificate2(certificate));
            return refusal.Value is null;
        },
    };

    private static readonly ConditionalWeakTable<ClusterTls, SslStreamCertificateContext> Contexts = new();

    /// <summary>One context per identity: it holds the certificate (no chain: the peer knows the CA) for every handshake.</summary>
    private static SslStreamCertificateContext Context(ClusterTls tls) =>
        Contexts.GetValue(tls, t => SslStreamCertificateContext.Create(t.Identity, additionalCertificates: null, offline: true));

    private static X509Certificate2? AsX509Certificate2(X509Certificate? certificate) => certificate switch
    {
        null => null,
        X509Certificate2 c => c,
        _ => X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()),
    };
}
