using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Devices.Internal.Commands;

namespace Fabric.Devices.Internal.Execution;

/// <summary>
/// Runs one prepared submission off the device actor: compute commands through the kernels, WAIT_FENCE through
/// <see cref="IFenceAccess"/>, SIGNAL_FENCE by telling the device. Returns null when every command ran, or the error
/// that stopped it; cancellation (reset, watchdog) surfaces as <see cref="OperationCanceledException"/>.
/// </summary>
internal static class SubmissionRunner
{
    public interface IFenceAccess
    {
        Task<FenceStatus> WaitAsync(FenceId fence, TimeSpan timeout, CancellationToken cancel);
        void SignalOut(int slot);
    }

    public static async Task<FabricError?> RunAsync(PreparedSubmission submission, FenceId fence, IFenceAccess fences,
        TimeSpan defaultWait, CancellationToken cancel)
    {
        foreach (var command in submission.Program.Commands)
        {
            cancel.ThrowIfCancellationRequested();
            if (submission.Revoked() is { } revoked)
                return new FabricError(ErrorCode.EIO, $"{fence} stopped at {command.Location}: {revoked.Message}");
            switch (command)
            {
                case SignalFenceCommand signal:
                    fences.SignalOut((int)signal.Slot);
                    break;
                case WaitFenceCommand wait:
                    var awaited = submission.InFences[(int)wait.Slot];
                    var timeout = wait.TimeoutMs == 0 ? defaultWait : TimeSpan.FromMilliseconds(wait.TimeoutMs);
                    var status = await fences.WaitAsync(awaited, timeout, cancel);
                    if (status.State == FenceState.Failed)
                        return new FabricError(ErrorCode.EIO,
                            $"{fence} stopped at {command.Location}: {awaited} failed: {status.Error!.Message}");
                    if (status.State == FenceState.Busy)
                        return new FabricError(ErrorCode.ETIMEDOUT,
                            $"{fence} stopped at {command.Location}: {awaited} did not signal within {timeout.TotalMilliseconds:0} ms");
                    break;
                default:
                    KernelExecutor.Execute(command, submission.Memory, cancel);
                    break;
            }
        }
        return null;
    }
}
