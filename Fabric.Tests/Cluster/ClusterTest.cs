using System.Diagnostics;
using Xunit.Abstractions;

namespace Fabric.Tests.Cluster;

/// <summary>
/// A test class on a cluster of real node processes: the nodes' output is written to the test log at the end, and
/// <see cref="UntilAsync{T}"/> waits for a condition with a bound instead of sleeping.
/// </summary>
public abstract class ClusterTest<TFixture>(TFixture cluster, ITestOutputHelper output) : IClassFixture<TFixture>, IAsyncLifetime
    where TFixture : ClusterFixture
{
    protected TFixture Cluster => cluster;
    protected ITestOutputHelper Output => output;

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual Task DisposeAsync()
    {
        cluster.Log(output);
        return Task.CompletedTask;
    }

    /// <summary>Reads until <paramref name="done"/> holds; fails naming <paramref name="what"/> and the last value after <paramref name="timeout"/>.</summary>
    protected static async Task<T> UntilAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (clock.Elapsed > timeout) throw new TimeoutException($"not within {timeout.TotalSeconds:0} s: {what} (last: {value})");
            await Task.Delay(50);
        }
    }
}
