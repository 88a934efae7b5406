using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Devices.DataPlane;
using Fabric.Devices.Internal.Commands;

namespace Fabric.Devices.Internal.Execution;

/// <summary>
/// Runs one prepared submission: compute commands through the kernels, WAIT_FENCE through
/// <see cref="IFenceAccess"/>, SIGNAL_FENCE by telling the device. Returns null when every command ran, or the error
/// that stopped it; cancellation (reset, watchdog) surfaces as <see cref="OperationCanceledException"/>.
/// </summary>
internal static class SubmissionRunner
{
    /// <summary>Operand bytes up to which a submission without waits or matmuls is cheaper to run than to hand off.</summary>
    public const ulong InlineBytes = 64 * 1024;

    public interface IFenceAccess
    {
        Task<FenceStatus> WaitAsync(FenceId fence, TimeSpan timeout, CancellationToken cancel);
        void SignalOut(int slot);
    }

    /// <summary>
    /// True for a tiny submission (no WAIT_FENCE, no MATMUL, no remote memory, at most <see cref="InlineBytes"/> of operands): it runs
    /// in microseconds, so the device runs it in place instead of paying a thread-pool hop per submission.
    /// </summary>
    public static bool RunsInline(PreparedSubmission submission)
    {
        if (submission.Remotes.Length > 0) return false;
        ulong bytes = 0;
        foreach (var command in submission.Program.Commands)
        {
            if (command is WaitFenceCommand or MatMulF32Command) return false;
            foreach (var operand in command.Operands) bytes += operand.Length;
            if (bytes > InlineBytes) return false;
        }
        return true;
    }

    /// <summary>Runs a submission that <see cref="RunsInline"/> accepted, synchronously.</summary>
    public static FabricError? RunInline(PreparedSubmission submission, FenceId fence, Action<int> signalOut)
    {
        foreach (var command in submission.Program.Commands)
        {
            if (Step(submission, fence, command, signalOut, CancellationToken.None) is { } error) return error;
        }
        return null;
    }

    public static async Task<FabricError?> RunAsync(PreparedSubmission submission, FenceId fence, IFenceAccess fences,
        FabricDataPlane? dataPlane, TimeSpan defaultWait, CancellationToken cancel)
    {
        foreach (var command in submission.Program.Commands)
        {
            cancel.ThrowIfCancellationRequested();
            if (command is CopyCommand copy && submission.Remotes.Length > 0 && IsRemoteCopy(submission, copy))
            {
                if (submission.Revoked() is { } revoked)
                    return new FabricError(ErrorCode.EIO, $"{fence} stopped at {command.Location}: {revoked.Message}");
                try
                {
                    await CopyRemoteAsync(submission, copy, dataPlane!, cancel);
                }
                catch (FabricException e)
                {
                    return e.Error with { Message = $"{fence} stopped at {command.Location}: {e.Error.Message}" };
                }
                continue;
            }
            if (command is not WaitFenceCommand wait)
            {
                if (Step(submission, fence, command, fences.SignalOut, cancel) is { } error) return error;
                continue;
            }
            var awaited = submission.InFences[(int)wait.Slot];
            var timeout = wait.TimeoutMs == 0 ? defaultWait : TimeSpan.FromMilliseconds(wait.TimeoutMs);
            var status = await fences.WaitAsync(awaited, timeout, cancel);
            if (status.State == FenceState.Failed)
                return new FabricError(ErrorCode.EIO, $"{fence} stopped at {command.Location}: {awaited} failed: {status.Error!.Message}");
            if (status.State == FenceState.Busy)
                return new FabricError(ErrorCode.ETIMEDOUT,
                    $"{fence} stopped at {command.Location}: {awaited} did not signal within {timeout.TotalMilliseconds:0} ms");
        }
        return null;
    }

    private static bool IsRemoteCopy(PreparedSubmission submission, CopyCommand copy) =>
        submission.Memory.TryRemote(copy.Src, out _, out _) || submission.Memory.TryRemote(copy.Dst, out _, out _);

    /// <summary>
    /// A COPY whose source or destination is another node's export: the bytes stream over the data plane straight
    /// between that node's arena and this one's, chunk by chunk, with no staging copy.
    /// </summary>
    private static unsafe Task CopyRemoteAsync(PreparedSubmission submission, CopyCommand copy, FabricDataPlane dataPlane, CancellationToken cancel)
    {
        var memory = submission.Memory;
        var length = (long)copy.Length;
        if (memory.TryRemote(copy.Src, out var source, out var sourceOffset))
        {
            var destination = memory.Translate(copy.Dst, copy.Length);
            return dataPlane.Client.ReadAsync(source, sourceOffset, length,
                (at, chunk) => new NativeMemoryManager(destination + at, chunk).Memory, cancel);
        }
        memory.TryRemote(copy.Dst, out var target, out var targetOffset);
        var from = memory.Translate(copy.Src, copy.Length);
        return dataPlane.Client.WriteAsync(target, targetOffset, length,
            (at, chunk) => new NativeMemoryManager(from + at, chunk).Memory, cancel);
    }

    /// <summary>One command that needs no waiting; an import revoked since submit stops the submission with EIO.</summary>
    private static FabricError? Step(PreparedSubmission submission, FenceId fence, DecodedCommand command, Action<int> signalOut,
        CancellationToken cancel)
    {
        if (submission.Revoked() is { } revoked)
            return new FabricError(ErrorCode.EIO, $"{fence} stopped at {command.Location}: {revoked.Message}");
        if (command is SignalFenceCommand signal) signalOut((int)signal.Slot);
        else KernelExecutor.Execute(command, submission.Memory, cancel);
        return null;
    }
}
