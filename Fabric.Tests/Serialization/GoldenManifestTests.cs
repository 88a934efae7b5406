using System.Reflection;
using Fabric.Core;
using Fabric.Core.Serialization;
using Fabric.Devices;
using Fabric.Node;

namespace Fabric.Tests.Serialization;

/// <summary>
/// The wire contract against its golden list, <c>Golden/manifests.txt</c>: every manifest that a stored journal or an
/// older node may hold still names the same message, and every message of this build is in the list.
/// </summary>
public sealed class GoldenManifestTests
{
    private const string GoldenName = "Golden/manifests.txt";

    /// <summary>The assemblies whose messages reach the wire and the journal; the tests' own messages are no part of the contract.</summary>
    private static readonly Assembly[] Shipped = [typeof(IFabricMessage).Assembly, typeof(DeviceManager).Assembly, typeof(NodeHost).Assembly];

    [Fact]
    public void Every_manifest_of_the_golden_list_still_names_its_message()
    {
        var golden = ReadGolden();
        var live = LiveTable();
        var manifestOfType = live.ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);

        var problems = new List<string>();
        foreach (var (manifest, typeName) in golden)
        {
            if (live.TryGetValue(manifest, out var now))
            {
                if (now != typeName)
                    problems.Add($"'{manifest}' is now declared by {now} instead of {typeName}. If that type is the old one renamed " +
                                 $"or moved, the wire is unchanged: write its new name in the second column of {GoldenName}.");
            }
            else if (manifestOfType.TryGetValue(typeName, out var changed))
                problems.Add($"{typeName} now declares the manifest '{changed}' instead of '{manifest}': stored journals and older " +
                             $"nodes know it only as '{manifest}' and would no longer read it. Put back [Manifest(\"{manifest}\")].");
            else
                problems.Add($"'{manifest}' ({typeName}) is gone: stored journals and older nodes would no longer read it. Keep a " +
                             $"message with [Manifest(\"{manifest}\")] (rename the type if you must, never its manifest).");
        }

        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Fact]
    public void Every_message_of_this_build_is_in_the_golden_list()
    {
        var golden = ReadGolden();
        var live = LiveTable();

        var missing = live.Where(kv => !golden.ContainsKey(kv.Key)).Select(kv => $"{kv.Key}\t{kv.Value}").Order(StringComparer.Ordinal).ToList();

        Assert.True(missing.Count == 0,
            $"new Fabric messages are not yet in {GoldenName}; once their manifests are final, add these lines (sorted, a tab " +
            $"between manifest and type) so the test guards them from now on:{Environment.NewLine}{string.Join(Environment.NewLine, missing)}");
    }

    [Fact]
    public void The_golden_list_is_sorted_and_names_each_manifest_once()
    {
        var manifests = GoldenLines().Select(l => l.Manifest).ToList();

        Assert.Equal(manifests.Order(StringComparer.Ordinal), manifests);
        Assert.Equal(manifests.Count, manifests.Distinct(StringComparer.Ordinal).Count());
        Assert.True(manifests.Count >= 90, $"only {manifests.Count} manifests in {GoldenName}");
    }

    /// <summary>Manifest → CLR full name of every message of the shipped assemblies, as the serializer's table has them.</summary>
    private static Dictionary<string, string> LiveTable() =>
        FabricMessageTypes.All.Where(kv => Shipped.Contains(kv.Value.Assembly))
            .ToDictionary(kv => kv.Key, kv => kv.Value.FullName!, StringComparer.Ordinal);

    private static Dictionary<string, string> ReadGolden() =>
        GoldenLines().ToDictionary(l => l.Manifest, l => l.TypeName, StringComparer.Ordinal);

    private static List<(string Manifest, string TypeName)> GoldenLines()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Serialization", "Golden", "manifests.txt");
        var lines = new List<(string, string)>();
        foreach (var line in File.ReadAllLines(path))
        {
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var fields = line.Split('\t');
            Assert.True(fields.Length == 2 && fields.All(f => f.Length > 0 && f.Trim() == f),
                $"{GoldenName}: '{line}' is not a manifest, a tab and a type name");
            lines.Add((fields[0], fields[1]));
        }
        return lines;
    }
}
