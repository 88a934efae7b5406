using System.Security.Cryptography.X509Certificates;

namespace Fabric.Core.Security;

/// <summary>
/// Whom a node or client accepts at the other end of a TLS connection: a certificate that chains to the cluster's CA
/// (that CA alone, not the system's roots), is within its validity, is meant for TLS (its extended key usage, when it
/// has one, includes the end it is used for) and is not in the revoked list.
/// </summary>
public sealed class ClusterTrust
{
    private readonly X509Certificate2 _authority;
    private readonly HashSet<string> _revoked;

    public ClusterTrust(X509Certificate2 authority, IEnumerable<string> revokedSerials)
    {
        _authority = authority;
        _revoked = new HashSet<string>(revokedSerials.Select(s => s.Trim()).Where(s => s.Length > 0), StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>The trust of a CA certificate file and, when it exists, a revoked list beside it (or at <paramref name="revokedPath"/>).</summary>
    public static ClusterTrust Load(string caPath, string? revokedPath = null)
    {
        if (!File.Exists(caPath)) throw new FileNotFoundException($"there is no CA certificate {caPath}", caPath);
        var revoked = revokedPath ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(caPath))!, ClusterTls.RevokedFile);
        return new ClusterTrust(X509CertificateLoader.LoadCertificateFromFile(caPath), File.Exists(revoked) ? File.ReadAllLines(revoked) : []);
    }

    public X509Certificate2 Authority => _authority;

    /// <summary>Null when <paramref name="peer"/> is trusted, else why not, in a sentence naming it.</summary>
    public string? Refusal(X509Certificate2? peer)
    {
        if (peer is null) return "it presented no certificate";
        var who = $"certificate '{peer.Subject}' (serial {peer.SerialNumber})";
        if (_revoked.Contains(peer.SerialNumber)) return $"{who} is revoked";
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.NoFlag;
        if (!chain.Build(peer))
            return $"{who} is not signed by the cluster's CA '{_authority.Subject}': " +
                   string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
        var root = chain.ChainElements[^1].Certificate;
        if (!root.RawDataMemory.Span.SequenceEqual(_authority.RawDataMemory.Span)) return $"{who} chains to '{root.Subject}', not to the cluster's CA";
        return null;
    }
}
