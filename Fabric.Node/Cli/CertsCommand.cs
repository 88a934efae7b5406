using System.CommandLine;
using System.Net;
using Fabric.Node.Security;

namespace Fabric.Node.Cli;

/// <summary>
/// <c>fabric certs init|issue|revoke</c>: the cluster's certificate authority in a directory of PEM files
/// (<see cref="ClusterCertificates"/>), for TLS on Akka remoting (<c>fabric node --tls-cert --tls-key --tls-ca</c>).
/// </summary>
public static class CertsCommand
{
    public const string DefaultDirectory = ClusterCertificates.DefaultDirectory;

    public static Command Build()
    {
        var certs = new Command("certs",
            "The cluster's certificate authority, for TLS with mutual authentication between nodes and clients: init makes the CA, issue a " +
            "certificate for a node or client, revoke refuses one from then on. PEM files in one directory (default " + DefaultDirectory +
            "); keys readable by their owner only. Copy ca.crt (and revoked) to every host, and each NAME.crt/NAME.key to its own.");
        certs.Subcommands.Add(Init());
        certs.Subcommands.Add(Issue());
        certs.Subcommands.Add(Revoke());
        return certs;
    }

    private static Option<string> Directory() => new("--dir") { Description = $"The CA's directory. Default {DefaultDirectory}.", DefaultValueFactory = _ => DefaultDirectory };

    private static Command Init()
    {
        var dir = Directory();
        var cluster = new Option<string>("--cluster") { Description = "The cluster's name, in the CA's subject. Default fabric.", DefaultValueFactory = _ => "fabric" };
        var command = new Command("init", "Creates the cluster's CA: ca.crt (give it to every node and client) and ca.key (keep it where certificates are issued). " +
                                          "Refused when the directory has a CA already.");
        command.Options.Add(dir);
        command.Options.Add(cluster);
        command.SetAction(parse => Run("init", () =>
        {
            var directory = parse.GetValue(dir)!;
            using var ca = ClusterCertificates.InitAuthority(directory, parse.GetValue(cluster)!);
            Console.Out.WriteLine($"created CA '{ca.Subject}' valid until {ca.NotAfter:yyyy-MM-dd}: {ClusterCertificates.CertificatePath(directory, ClusterCertificates.CaName)} " +
                                  $"and its key {ClusterCertificates.KeyPath(directory, ClusterCertificates.CaName)}; next: fabric certs issue NAME --dir {directory}");
        }));
        return command;
    }

    private static Command Issue()
    {
        var dir = Directory();
        var name = new Argument<string>("NAME") { Description = "The node's or client's name: NAME.crt and NAME.key are written (its subject CN=NAME)." };
        var dns = new Option<string[]>("--dns") { Description = "More DNS names the certificate is for (besides NAME and localhost); repeat or comma-separate.", AllowMultipleArgumentsPerToken = true };
        var ip = new Option<string[]>("--ip") { Description = "More IP addresses the certificate is for (besides 127.0.0.1); repeat or comma-separate.", AllowMultipleArgumentsPerToken = true };
        var command = new Command("issue", "Issues a certificate signed by the CA, for a node or a client (both ends of a TLS connection), valid 825 days.");
        command.Arguments.Add(name);
        command.Options.Add(dir);
        command.Options.Add(dns);
        command.Options.Add(ip);
        command.SetAction(parse => Run("issue", () =>
        {
            var directory = parse.GetValue(dir)!;
            var who = parse.GetValue(name)!;
            var addresses = Split(parse.GetValue(ip)).Select(a => IPAddress.TryParse(a, out var parsed) ? parsed
                : throw new ArgumentException($"--ip {a} is not an IP address")).ToList();
            using var issued = ClusterCertificates.Issue(directory, who, Split(parse.GetValue(dns)), addresses);
            var cert = ClusterCertificates.CertificatePath(directory, who);
            var key = ClusterCertificates.KeyPath(directory, who);
            var ca = ClusterCertificates.CertificatePath(directory, ClusterCertificates.CaName);
            Console.Out.WriteLine($"issued '{issued.Subject}' (serial {issued.SerialNumber}) valid until {issued.NotAfter:yyyy-MM-dd}: {cert} and {key}; " +
                                  $"use: fabric node --name {who} --tls-cert {cert} --tls-key {key} --tls-ca {ca}");
        }));
        return command;
    }

    private static Command Revoke()
    {
        var dir = Directory();
        var name = new Argument<string>("NAME") { Description = "The certificate to revoke (NAME.crt in the directory)." };
        var command = new Command("revoke", "Adds a certificate's serial number to the directory's revoked list: nodes that read it (the file 'revoked' beside " +
                                            "their --tls-ca, at start) refuse that certificate. Copy the list to every host and restart its nodes.");
        command.Arguments.Add(name);
        command.Options.Add(dir);
        command.SetAction(parse => Run("revoke", () =>
        {
            var directory = parse.GetValue(dir)!;
            var serial = ClusterCertificates.Revoke(directory, parse.GetValue(name)!);
            Console.Out.WriteLine($"revoked {parse.GetValue(name)} (serial {serial}): listed in {Path.Combine(directory, Fabric.Core.Security.ClusterTls.RevokedFile)}");
        }));
        return command;
    }

    private static IEnumerable<string> Split(string[]? values) =>
        (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>Exit 0 when done; a refusal or an unreadable directory is one sentence on stderr and exit 1 (2 for a bad argument).</summary>
    private static int Run(string command, Action body)
    {
        try
        {
            body();
            return 0;
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"fabric certs {command}: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            Console.Error.WriteLine($"fabric certs {command}: {e.Message}");
            return 1;
        }
    }
}
