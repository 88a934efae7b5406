using System.Collections.Immutable;
using Akka.Actor;
using Fabric.Core;
using Fabric.Core.Client;

namespace Fabric.Node.Jobs;

/// <summary>
/// What a running <see cref="JobRun"/> reports to its <see cref="JobEntityActor"/> (local messages), which turns them
/// into events on its own thread, in order.
/// </summary>
internal static class JobRunReports
{
    /// <summary>A report of progress (what a stopped run still sends is dropped).</summary>
    public interface IProgress : INoSerializationVerificationNeeded;

    public sealed record RunEvent(JobEvents.IJobEvent Event) : IProgress;
    public sealed record TaskSucceeded(string Task, DeviceId Device, int Attempt, double Seconds) : IProgress;

    /// <summary>Reports of many tasks at once (a placement round, a device's batch): persisted together, in one write.</summary>
    public sealed record RunEvents(ImmutableArray<JobEvents.IJobEvent> Events) : IProgress;
    public sealed record TasksSucceeded(ImmutableArray<TaskSucceeded> Tasks) : IProgress;
    public sealed record RunFinished(JobRunResult Outcome) : INoSerializationVerificationNeeded;

    internal static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Tells the entity each report of its run.</summary>
    public sealed class ToEntity(IActorRef entity) : IJobRunEvents
    {
        public void TaskPlaced(string task, DeviceId device, int attempt) =>
            entity.Tell(new RunEvent(new JobEvents.TaskPlaced(task, device, attempt, Now())));

        public void TasksPlaced(IReadOnlyList<(string Task, DeviceId Device, int Attempt)> placed)
        {
            var now = Now();
            entity.Tell(new RunEvents([.. placed.Select(p => (JobEvents.IJobEvent)new JobEvents.TaskPlaced(p.Task, p.Device, p.Attempt, now))]));
        }

        public void TasksSucceeded(IReadOnlyList<(string Task, DeviceId Device, int Attempt, TimeSpan Took)> succeeded) =>
            entity.Tell(new JobRunReports.TasksSucceeded([.. succeeded.Select(s => new TaskSucceeded(s.Task, s.Device, s.Attempt, s.Took.TotalSeconds))]));

        public void TaskSucceeded(string task, DeviceId device, int attempt, TimeSpan took) =>
            entity.Tell(new JobRunReports.TaskSucceeded(task, device, attempt, took.TotalSeconds));

        public void TaskFailed(string task, DeviceId device, int attempt, FabricError error, bool willRetry) =>
            entity.Tell(new RunEvent(new JobEvents.TaskFailed(task, device, attempt, error, willRetry, Now())));

        public void BuffersLost(ImmutableArray<string> buffers, string reason) =>
            entity.Tell(new RunEvent(new JobEvents.BuffersLost(buffers, reason, Now())));
    }

    /// <summary>
    /// A run under way (its <see cref="JobRunActor"/>): stopped by cancelling it; its client is disposed once the run is
    /// over (<paramref name="run"/>: it released its contexts, or its actor stopped and the client's disposal closes them).
    /// </summary>
    public sealed class RunHandle(CancellationTokenSource cancel, Task run, FabricClient client)
    {
        public FabricClient Client => client;

        public void Stop()
        {
            cancel.Cancel();
            _ = ReleaseAsync();
        }

        private async Task ReleaseAsync()
        {
            await run.ContinueWith(_ => { }, TaskScheduler.Default);
            cancel.Dispose();
            await client.DisposeAsync();
        }
    }
}
