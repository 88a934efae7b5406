using System.Collections.Immutable;
using MessagePack;
using MessagePack.Formatters;

namespace Fabric.Core.Serialization;

/// <summary>
/// MessagePack formatters for <see cref="ImmutableArray{T}"/> (default → empty) and <see cref="ImmutableList{T}"/>, both
/// as a plain array: either reads what the other wrote.
/// </summary>
internal sealed class ImmutableCollectionResolver : IFormatterResolver
{
    public static readonly ImmutableCollectionResolver Instance = new();

    public IMessagePackFormatter<T>? GetFormatter<T>() => Cache<T>.Formatter;

    private static class Cache<T>
    {
        public static readonly IMessagePackFormatter<T>? Formatter = Create();

        private static IMessagePackFormatter<T>? Create()
        {
            var type = typeof(T);
            if (!type.IsGenericType) return null;
            var definition = type.GetGenericTypeDefinition();
            var formatter = definition == typeof(ImmutableArray<>) ? typeof(ImmutableArrayFormatter<>)
                : definition == typeof(ImmutableList<>) ? typeof(ImmutableListFormatter<>)
                : null;
            return formatter is null ? null : (IMessagePackFormatter<T>)Activator.CreateInstance(formatter.MakeGenericType(type.GetGenericArguments()[0]))!;
        }
    }

    private sealed class ImmutableArrayFormatter<T> : IMessagePackFormatter<ImmutableArray<T>>
    {
        public void Serialize(ref MessagePackWriter writer, ImmutableArray<T> value, MessagePackSerializerOptions options)
        {
            var items = value.IsDefault ? [] : value;
            writer.WriteArrayHeader(items.Length);
            var formatter = options.Resolver.GetFormatterWithVerify<T>();
            foreach (var item in items) formatter.Serialize(ref writer, item, options);
        }

        public ImmutableArray<T> Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
        {
            if (reader.TryReadNil()) return [];
            var count = reader.ReadArrayHeader();
            var builder = ImmutableArray.CreateBuilder<T>(count);
            var formatter = options.Resolver.GetFormatterWithVerify<T>();
            options.Security.DepthStep(ref reader);
            try
            {
                for (var i = 0; i < count; i++) builder.Add(formatter.Deserialize(ref reader, options));
            }
            finally { reader.Depth--; }
            return builder.MoveToImmutable();
        }
    }

    private sealed class ImmutableListFormatter<T> : IMessagePackFormatter<ImmutableList<T>?>
    {
        private static readonly ImmutableArrayFormatter<T> Items = new();

        public void Serialize(ref MessagePackWriter writer, ImmutableList<T>? value, MessagePackSerializerOptions options)
        {
            if (value is null)
            {
                writer.WriteNil();
                return;
            }
            writer.WriteArrayHeader(value.Count);
            var formatter = options.Resolver.GetFormatterWithVerify<T>();
            foreach (var item in value) formatter.Serialize(ref writer, item, options);
        }

        public ImmutableList<T>? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) =>
            [.. Items.Deserialize(ref reader, options)];
    }
}
