using System.Collections.Immutable;
using MessagePack;
using MessagePack.Formatters;

namespace Fabric.Core.Serialization;

/// <summary>MessagePack formatters for <see cref="ImmutableArray{T}"/> (as a plain array; default → empty).</summary>
internal sealed class ImmutableArrayResolver : IFormatterResolver
{
    public static readonly ImmutableArrayResolver Instance = new();

    public IMessagePackFormatter<T>? GetFormatter<T>() => Cache<T>.Formatter;

    private static class Cache<T>
    {
        public static readonly IMessagePackFormatter<T>? Formatter = Create();

        private static IMessagePackFormatter<T>? Create()
        {
            var type = typeof(T);
            if (!type.IsGenericType || type.GetGenericTypeDefinition() != typeof(ImmutableArray<>)) return null;
            var formatter = typeof(ImmutableArrayFormatter<>).MakeGenericType(type.GetGenericArguments()[0]);
            return (IMessagePackFormatter<T>)Activator.CreateInstance(formatter)!;
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
}
