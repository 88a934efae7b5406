using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Fabric.Core.Security;

namespace Fabric.Node.Security;

/// <summary>
/// A cluster's certificate authority in a directory of PEM files, made with System.Security.Cryptography alone (no
/// openssl): <c>ca.crt</c> and <c>ca.key</c> (the CA), <c>NAME.crt</c> and <c>NAME.key</c> for each node or client
/// it issued, and <c>revoked</c> (the serial numbers of revoked certificates, one per line, hex). Keys are ECDSA P-256
/// and written readable by their owner only. A node trusts exactly the certificates its CA signed and did not revoke
/// (<see cref="ClusterTrust"/>).
/// </summary>
public static class ClusterCertificates
{
    public const string CaName = "ca";

    /// <summary>Where <c>fabric certs</c> keeps the CA, and where <c>fabric node</c> looks for its certificate when given none.</summary>
    public const string DefaultDirectory = ".fabric/certs";

    public static readonly TimeSpan CaValidity = TimeSpan.FromDays(3650);
    public static readonly TimeSpan IssuedValidity = TimeSpan.FromDays(825);

    public static string CertificatePath(string directory, string name) => Path.Combine(directory, name + ".crt");
    public static string KeyPath(string directory, string name) => Path.Combine(directory, name + ".key");

    /// <summary>Creates the CA of a new cluster in <paramref name="directory"/>; refuses (IOException) when one is there.</summary>
    public static X509Certificate2 InitAuthority(string directory, string cluster)
    {
        Directory.CreateDirectory(directory);
        if (File.Exists(CertificatePath(directory, CaName)))
            throw new IOException($"{CertificatePath(directory, CaName)} exists already: a directory holds one cluster's CA (remove it to start over)");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={cluster} Fabric CA, O=Fabric", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var ca = request.CreateSelfSigned(now.AddMinutes(-5), now + CaValidity);
        Write(directory, CaName, ca, key);
        return ca;
    }

    /// <summary>
    /// Issues a certificate for <paramref name="name"/> (a node or a client), for both ends of a connection (server and
    /// client authentication), valid for its name, localhost, 127.0.0.1 and the names and addresses given.
    /// </summary>
    public static X509Certificate2 Issue(string directory, string name, IEnumerable<string> dnsNames, IEnumerable<IPAddress> addresses)
    {
        if (name == CaName || name.Length == 0 || name.IndexOfAny([.. Path.GetInvalidFileNameChars(), ' ']) >= 0)
            throw new ArgumentException($"'{name}' cannot name a certificate: use letters, digits, '-', '_' or '.', and not '{CaName}'");
        using var ca = LoadAuthority(directory);
        if (File.Exists(CertificatePath(directory, name)))
            throw new IOException($"{CertificatePath(directory, name)} exists already: revoke it (fabric certs revoke {name}) and remove it to issue again");
        using var caKey = ca.GetECDsaPrivateKey() ?? throw new InvalidOperationException($"the CA in {directory} has no ECDSA key");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}, O=Fabric", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [Oid.FromOidValue("1.3.6.1.5.5.7.3.1", OidGroup.EnhancedKeyUsage), Oid.FromOidValue("1.3.6.1.5.5.7.3.2", OidGroup.EnhancedKeyUsage)], false));
        var san = new SubjectAlternativeNameBuilder();
        foreach (var dns in dnsNames.Prepend("localhost").Prepend(name).Distinct(StringComparer.OrdinalIgnoreCase)) san.AddDnsName(dns);
        foreach (var address in addresses.Prepend(IPAddress.Loopback).Distinct()) san.AddIpAddress(address);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var now = DateTimeOffset.UtcNow;
        var notAfter = now + IssuedValidity < ca.NotAfter ? now + IssuedValidity : new DateTimeOffset(ca.NotAfter.ToUniversalTime());
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // a positive serial number
        using var issued = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), now.AddMinutes(-5), notAfter, serial);
        var withKey = issued.CopyWithPrivateKey(key);
        Write(directory, name, withKey, key);
        return withKey;
    }

    /// <summary>Adds the certificate of <paramref name="name"/> to the directory's revoked list; its serial number, for the record.</summary>
    public static string Revoke(string directory, string name)
    {
        var path = CertificatePath(directory, name);
        if (!File.Exists(path)) throw new FileNotFoundException($"there is no certificate {path} to revoke", path);
        using var certificate = X509CertificateLoader.LoadCertificateFromFile(path);
        var revoked = Path.Combine(directory, ClusterTls.RevokedFile);
        var serials = File.Exists(revoked) ? File.ReadAllLines(revoked) : [];
        if (!serials.Contains(certificate.SerialNumber, StringComparer.OrdinalIgnoreCase))
            File.AppendAllLines(revoked, [certificate.SerialNumber]);
        return certificate.SerialNumber;
    }

    /// <summary>The TLS of <paramref name="name"/> from the directory's files: its certificate and key, trusting the directory's CA.</summary>
    public static ClusterTls LoadTls(string directory, string name) =>
        ClusterTls.Load(CertificatePath(directory, name), KeyPath(directory, name), CertificatePath(directory, CaName));

    /// <summary>The name a client's certificate is issued under and looked for (<c>fabric check</c>, LocalCluster's client).</summary>
    public const string ClientName = "client";

    /// <summary>
    /// The files of <paramref name="name"/>'s TLS in <paramref name="directory"/> — its certificate, its key and the
    /// CA — when all three are there (as <c>fabric certs issue</c> leaves them), else null.
    /// </summary>
    public static (string Certificate, string Key, string Ca)? Find(string directory, string name)
    {
        var files = (CertificatePath(directory, name), KeyPath(directory, name), CertificatePath(directory, CaName));
        return File.Exists(files.Item1) && File.Exists(files.Item2) && File.Exists(files.Item3) ? files : null;
    }

    /// <summary>The flags that give <c>fabric node</c> or <c>fabric check</c> the TLS of <paramref name="name"/> from the directory's files.</summary>
    public static string[] TlsArguments(string directory, string name) =>
        ["--tls-cert", CertificatePath(directory, name), "--tls-key", KeyPath(directory, name), "--tls-ca", CertificatePath(directory, CaName)];

    /// <summary>The CA with its private key, as <see cref="InitAuthority"/> wrote it.</summary>
    public static X509Certificate2 LoadAuthority(string directory)
    {
        var path = CertificatePath(directory, CaName);
        if (!File.Exists(path)) throw new FileNotFoundException($"there is no CA in {directory}: create one with fabric certs init --dir {directory}", path);
        return X509Certificate2.CreateFromPemFile(path, KeyPath(directory, CaName));
    }

    private static void Write(string directory, string name, X509Certificate2 certificate, ECDsa key)
    {
        var keyPath = KeyPath(directory, name);
        File.WriteAllText(CertificatePath(directory, name), certificate.ExportCertificatePem() + "\n");
        // Made empty and private first, then written: the key is never readable by others, not even for a moment.
        using (File.Create(keyPath, 1, FileOptions.None)) { }
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem() + "\n");
    }
}
