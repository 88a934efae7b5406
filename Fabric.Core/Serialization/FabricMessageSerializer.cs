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
/// The serializer of every <see cref="IFabricMessage"/>: MessagePack with explicit contracts, a stable short string
/// manifest per type (its name, prefixed by the protocol class that holds it, e.g. <c>ContextRequests.Allocate</c>),
/// actor refs as actor paths, and no CLR type names on the wire. An unknown manifest is a
/// <see cref="SerializationException"/>, never a guess.
/// </summary>
public sealed class FabricMessageSerializer : SerializerWithStringManifest
{
    /// <summary>Akka reserves 0–100; this one is Fabric's.</summary>
    public const int SerializerId = 4117;

    private readonly MessagePackSerializerOptions _options;

    public FabricMessageSerializer(ExtendedActorSystem system) : base(system)
    {
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
/// The manifest ↔ type table of every <see cref="IFabricMessage"/> in the loaded Fabric assemblies. Built once and
/// rebuilt when an unknown manifest arrives (an assembly may load later); two types with one manifest fail loudly.
/// </summary>
public static class FabricMessageTypes
{
    private static volatile Table _table = Build();

    private sealed record Table(FrozenDictionary<string, Type> ByManifest, FrozenDictionary<Type, string> ByType, int AssemblyCount);

    /// <summary>Every message type known now, by manifest.</summary>
    public static IReadOnlyDictionary<string, Type> All => Refresh().ByManifest;

    public static string ManifestOf(Type type)
    {
        if (_table.ByType.TryGetValue(type, out var manifest)) return manifest;
        if (Refresh().ByType.TryGetValue(type, out manifest)) return manifest;
        throw new SerializationException($"{type.FullName} is not a Fabric message (it does not implement IFabricMessage)");
    }

    public static Type? TypeOf(string manifest) =>
        _table.ByManifest.TryGetValue(manifest, out var type) ? type
        : Refresh().ByManifest.GetValueOrDefault(manifest);

    public static string ManifestName(Type type) =>
        type.DeclaringType is { } outer ? $"{outer.Name}.{type.Name}" : type.Name;

    private static Table Refresh()
    {
        var current = _table;
        if (FabricAssemblies().Count() == current.AssemblyCount) return current;
        return _table = Build();
    }

    private static IEnumerable<Assembly> FabricAssemblies()
    {
        var core = typeof(IFabricMessage).Assembly;
        return AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => a == core || a.GetReferencedAssemblies().Any(r => r.Name == core.GetName().Name));
    }

    private static Table Build()
    {
        var assemblies = FabricAssemblies().ToList();
        var byManifest = new Dictionary<string, Type>(StringComparer.Ordinal);
        foreach (var type in assemblies.SelectMany(LoadableTypes))
        {
            if (!typeof(IFabricMessage).IsAssignableFrom(type) || type.IsInterface || type.IsAbstract) continue;
            var manifest = ManifestName(type);
            if (byManifest.TryGetValue(manifest, out var other) && other != type)
                throw new InvalidOperationException($"two Fabric messages share the manifest '{manifest}': {other.FullName} and {type.FullName}");
            byManifest[manifest] = type;
        }
        return new Table(byManifest.ToFrozenDictionary(), byManifest.ToFrozenDictionary(kv => kv.Value, kv => kv.Key), assemblies.Count);
    }

    private static IEnumerable<Type> LoadableTypes(Assembly assembly)
    {
        try { return assembly.GetTypes(); }
        catch (ReflectionTypeLoadException e) { return e.Types.OfType<Type>(); }
    }
}
