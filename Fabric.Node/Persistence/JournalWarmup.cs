using Akka.Actor;

namespace Fabric.Node.Persistence;

/// <summary>A node's first read of its journal, made at start (<see cref="JournalWarmupActor"/>).</summary>
public static class JournalWarmup
{
    /// <summary>
    /// Warms the journal of <paramref name="system"/> → a task that ends when it has been read once, or after
    /// <paramref name="timeout"/>; it never fails (a journal that cannot be read is reported by whoever needs it).
    /// </summary>
    public static async Task RunAsync(ActorSystem system, string node, TimeSpan timeout)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        system.ActorOf(Props.Create(() => new JournalWarmupActor(node, done)), $"journal-warmup-{Guid.NewGuid():N}");
        try { await done.Task.WaitAsync(timeout); }
        catch (Exception) { } // too slow, or the journal refused: the node goes on, and its jobs report the journal's error
    }
}
