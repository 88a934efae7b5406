using System.Collections.Frozen;
using System.Reflection;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using MessagePack;
using MessagePack.Formatters;
using MessagePack.Resolvers;

namespace Fabric.Core.Serialization;

/// <summary>
/// The serializer of every <see cref="IFabricMessage"/>: MessagePack with explicit contracts, an explicit short string
/// manifest per type (its <see cref="ManifestAttribute"/>, e.g. <c>[Manifest("ContextRequests.Allocate")]</c>; never
/// derived from the CLR name), actor refs as actor paths, and no CLR type names on the wire. An unknown manifest is a
/// <see cref="SerializationException"/>, never a guess.
/// <para>
/// The wire contract is frozen by golden files in <c>Fabric.Tests/Serialization/Golden/</c>: <c>manifests.txt</c>
/// lists every manifest with the type that carries it (a manifest that disappears or changes fails the test, as a
/// new one not yet listed does), and <c>journal.db</c> is a SQLite journal and snapshot store written by an earlier
/// build that every later build must still recover (<c>GoldenJournalTests</c>).
/// </para>
/// </summary>
public sealed class FabricMessageSerializer : SerializerWithStringManifest
{
    /// <summary>Akka reserves 0–100; this one is Fabric's.</summary>
    public const int SerializerId = 4117;

    private readonly MessagePackSerializerOptions _options;

    public FabricMessageSerializer(ExtendedActorSystem system) : base(system)
    {
        // Builds the manifest table now: a message without a manifest, or a manifest declared twice, stops the
        // ActorSystem from starting instead of failing its first message.
        _ = FabricMessageTypes.All;
        var resolver = CompositeResolver.Create(
            [new ActorRefFormatter(system)],
            [ImmutableCollectionResolver.Instance, StandardResolver.Instance]);
        _options = MessagePackSerializerOptions.Standard
            .WithResolver(resolver)
            .WithSecurity(MessagePackSecurity.UntrustedData);
    }

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => FabricMessageTypes.ManifestOf(o.GetType());

    public override byte[] ToBinary(object obj) => MessagePackSerializer.Serialize(obj.GetType(), obj, _options);

    public override object FromBinary(byte[] bytes, string manifest)
    {
        var type = FabricMessageTypes.TypeOf(manifest)
                   ?? throw new SerializationException($"unknown Fabric message manifest '{manifest}'");
        return MessagePackSerializer.Deserialize(type, bytes, _options)
               ?? throw new SerializationException($"Fabric message '{manifest}' decoded to null");
    }

    /// <summary>
    /// Actor refs as their serialized paths (with uid). Resolving a path is costly and the same few refs (sessions,
    /// contexts) come back in every message, so resolved refs are cached; a path with a uid always names one actor.
    /// </summary>
    private sealed class ActorRefFormatter(ExtendedActorSystem system) : IMessagePackFormatter<IActorRef?>
    {
        private const int CacheLimit = 16_384;
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, IActorRef> _resolved = new(StringComparer.Ordinal);

        public void Serialize(ref MessagePackWriter writer, IActorRef? value, MessagePackSerializerOptions options)
        {
            if (value is null || value.IsNobody()) writer.WriteNil();
            else writer.Write(Akka.Serialization.Serialization.SerializedActorPath(value));
        }

        public IActorRef? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
        {
            if (reader.TryReadNil()) return null;
            var path = reader.ReadString() ?? throw new SerializationException("actor path missing");
            if (_resolved.TryGetValue(path, out var known)) return known;
            if (_resolved.Count >= CacheLimit) _resolved.Clear();
            var resolved = system.Provider.ResolveActorRef(path);
            _resolved[path] = resolved;
            return resolved;
        }
    }
}

/// <summary>
/// The manifest ↔ type table of every <see cref="IFabricMessage"/> in the loaded Fabric assemblies, taken from their
/// <see cref="ManifestAttribute"/>s and nothing else: a type's name plays no part, so renaming or moving it changes
/// nothing on the wire. Built on first use (the serializer's constructor, so when an ActorSystem starts) and rebuilt
/// when an unknown manifest arrives (an assembly may load later). A concrete message type without a manifest, or two
/// types with one manifest, make the build throw an <see cref="InvalidOperationException"/> naming them.
/// </summary>
public static class FabricMessageTypes
{
    private static volatile Table? _table;

    private sealed record Table(FrozenDictionary<string, Type> ByManifest, FrozenDictionary<Type, string> ByType, int AssemblyCount);

    /// <summary>Every message type known now, by manifest.</summary>
    public static IReadOnlyDictionary<string, Type> All => Refresh().ByManifest;

    public static string ManifestOf(Type type)
    {
        if (Current.ByType.TryGetValue(type, out var manifest)) return manifest;
        if (Refresh().ByType.TryGetValue(type, out manifest)) return manifest;
        throw new SerializationException($"{type.FullName} is not a Fabric message (it is not a concrete IFabricMessage of a loaded Fabric assembly)");
    }

    public static Type? TypeOf(string manifest) =>
        Current.ByManifest.TryGetValue(manifest, out var type) ? type
        : Refresh().ByManifest.GetValueOrDefault(manifest);

    /// <summary>The manifest declared on <paramref name="type"/> by its <see cref="ManifestAttribute"/>, or null.</summary>
    public static string? DeclaredManifest(Type type) => type.GetCustomAttribute<ManifestAttribute>(inherit: false)?.Name;

    private static Table Current => _table ?? Refresh();

    private static Table Refresh()
    {
        var current = _table;
        var assemblies = FabricAssemblies();
        if (current is not null && assemblies.Count == current.AssemblyCount) return current;
        var byManifest = Build(assemblies.SelectMany(LoadableTypes));
        return _table = new Table(byManifest, byManifest.ToFrozenDictionary(kv => kv.Value, kv => kv.Key), assemblies.Count);
    }

    private static List<Assembly> FabricAssemblies()
    {
        var core = typeof(IFabricMessage).Assembly;
        var name = core.GetName().Name;
        return AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => a == core || (!a.IsDynamic && a.GetReferencedAssemblies().Any(r => r.Name == name)))
            .ToList();
    }

    /// <summary>
    /// The table of the concrete <see cref="IFabricMessage"/> types among <paramref name="types"/> (the others are
    /// ignored), or an <see cref="InvalidOperationException"/> naming every type without a manifest and every manifest
    /// declared twice.
    /// </summary>
    internal static FrozenDictionary<string, Type> Build(IEnumerable<Type> types)
    {
        var byManifest = new Dictionary<string, Type>(StringComparer.Ordinal);
        var unnamed = new List<Type>();
        var shared = new List<string>();
        foreach (var type in types.Distinct())
        {
            if (!typeof(IFabricMessage).IsAssignableFrom(type) || type.IsInterface || type.IsAbstract) continue;
            var manifest = DeclaredManifest(type);
            if (string.IsNullOrWhiteSpace(manifest)) unnamed.Add(type);
            else if (byManifest.TryGetValue(manifest, out var other))
                shared.Add($"'{manifest}' is declared by both {other.FullName} and {type.FullName}");
            else byManifest[manifest] = type;
        }
        if (unnamed.Count == 0 && shared.Count == 0) return byManifest.ToFrozenDictionary(StringComparer.Ordinal);
        var problems = new List<string>();
        if (unnamed.Count > 0)
            problems.Add("Fabric messages without a [Manifest(\"...\")]: " +
                         string.Join(", ", unnamed.Select(t => t.FullName).Order(StringComparer.Ordinal)) +
                         " (a message that has shipped keeps the manifest listed for it in Fabric.Tests/Serialization/Golden/manifests.txt; " +
                         "a new one takes a new name and a line there)");
        if (shared.Count > 0) problems.Add("Fabric message manifests declared twice: " + string.Join("; ", shared));
        throw new InvalidOperationException(string.Join(". ", problems));
    }

    private static IEnumerable<Type> LoadableTypes(Assembly assembly)
    {
        try { return assembly.GetTypes(); }
        catch (ReflectionTypeLoadException e) { return e.Types.OfType<Type>(); }
    }
}
