using System.Collections.Immutable;
using Fabric.Core.Serialization;
using MessagePack;

namespace Fabric.Core.Protocol;

/// <summary>
/// Tasks run by the device itself: one message carries many tasks, each a program plus what it reads and writes, and
/// one reply carries their outcomes. The context does for each what a client would do with the low-level requests of
/// <see cref="ContextRequests"/> (allocate and map the outputs, import and map the inputs, submit, wait for the fence),
/// but on the device's own node, so a task costs no round trip of its own. Sent to a context like any request; the
/// device must be attached to an address space (the task's mappings go there).
/// </summary>
public static class TaskRequests
{
    public enum OperandKind : byte
    {
        /// <summary>A buffer of this context (<see cref="Operand.Handle"/>), mapped once and kept mapped for later tasks.</summary>
        Local = 0,

        /// <summary>
        /// Another context's export (<see cref="Operand.Token"/>), read-only: imported once per context and kept while
        /// the export lives; from another node its bytes are copied once into this device's memory and read there.
        /// </summary>
        Import = 1,

        /// <summary>New device memory holding <see cref="Operand.Data"/>; the task's result names it.</summary>
        Data = 2,

        /// <summary>New zeroed device memory of <see cref="Operand.Size"/> bytes for the task to write; the task's result names it.</summary>
        Output = 3,
    }

    /// <summary>One thing a task's program addresses: operand i is at <see cref="Commands.TaskOperands.Address"/>(i).</summary>
    [MessagePackObject]
    public sealed record Operand(
        [property: Key(0)] OperandKind Kind,
        [property: Key(1)] BufferHandle Handle,
        [property: Key(2)] ExportToken Token,
        [property: Key(3)] byte[]? Data,
        [property: Key(4)] long Size,
        [property: Key(5)] Access Access)
    {
        /// <summary>A buffer of this context of <paramref name="size"/> bytes (0: not checked), mapped with <paramref name="access"/> the first time.</summary>
        public static Operand Local(BufferHandle handle, long size, Access access = Access.Read) => new(OperandKind.Local, handle, default, null, size, access);

        public static Operand Import(ExportToken token, long size) => new(OperandKind.Import, default, token, null, size, Access.Read);
        public static Operand Of(byte[] data) => new(OperandKind.Data, default, default, data, data.Length, Access.ReadWrite);
        public static Operand Output(long size) => new(OperandKind.Output, default, default, null, size, Access.ReadWrite);

        /// <summary>Whether the task's result names a buffer made for this operand.</summary>
        [IgnoreMember]
        public bool Makes => Kind is OperandKind.Data or OperandKind.Output;
    }

    /// <summary>A task: <paramref name="Program"/> (operand-relative, see <see cref="Commands.TaskOperands"/>) on queue <paramref name="Queue"/>.</summary>
    [MessagePackObject]
    public sealed record TaskRequest(
        [property: Key(0)] long Tag,
        [property: Key(1)] byte[] Program,
        [property: Key(2)] ImmutableArray<Operand> Operands,
        [property: Key(3)] int Queue = 0);

    /// <summary>
    /// Runs <paramref name="Tasks"/>, side by side, each within <paramref name="TimeoutMs"/> → <see cref="TasksRan"/> once
    /// all have ended, in their order. First, and without an answer of their own: <paramref name="Release"/> (buffers
    /// of this context that tasks made or used) are unmapped and freed, and the imports of <paramref name="Forget"/>
    /// are let go (all of them with <paramref name="ForgetAllImports"/>), so their memory serves the tasks.
    /// </summary>
    [MessagePackObject]
    [Manifest("TaskRequests.RunTasks")]
    public sealed record RunTasks(
        [property: Key(0)] ImmutableArray<TaskRequest> Tasks,
        [property: Key(1)] long TimeoutMs,
        [property: Key(2)] ImmutableArray<BufferHandle> Release,
        [property: Key(3)] ImmutableArray<ExportId> Forget,
        [property: Key(4)] bool ForgetAllImports = false) : IFabricMessage;

    /// <summary>A buffer a task made (for a Data or Output operand), now the context's like any it allocated.</summary>
    [MessagePackObject]
    public readonly record struct MadeBuffer([property: Key(0)] BufferHandle Handle, [property: Key(1)] long Size);

    /// <summary>
    /// How one task ended: <paramref name="Error"/> null when its fence signalled without one; then
    /// <paramref name="Made"/> names the buffers of its Data and Output operands, in operand order. A failed task
    /// leaves nothing behind (what it made is freed).
    /// </summary>
    [MessagePackObject]
    public sealed record TaskOutcome(
        [property: Key(0)] long Tag,
        [property: Key(1)] FabricError? Error,
        [property: Key(2)] ImmutableArray<MadeBuffer> Made,
        [property: Key(3)] long Microseconds);

    [MessagePackObject]
    [Manifest("TaskRequests.TasksRan")]
    public sealed record TasksRan([property: Key(0)] ImmutableArray<TaskOutcome> Outcomes) : IFabricMessage;

    /// <summary>
    /// Reads the first <paramref name="Lengths"/>[i] bytes of each of <paramref name="Handles"/> (buffers of this context,
    /// such as tasks made) → <see cref="BuffersRead"/>, in order, in one reply: what tasks produced, fetched without a
    /// round trip per buffer. One that cannot be read fails the request with its error.
    /// </summary>
    [MessagePackObject]
    [Manifest("TaskRequests.ReadBuffers")]
    public sealed record ReadBuffers([property: Key(0)] ImmutableArray<BufferHandle> Handles, [property: Key(1)] ImmutableArray<int> Lengths) : IFabricMessage;

    [MessagePackObject]
    [Manifest("TaskRequests.BuffersRead")]
    public sealed record BuffersRead([property: Key(0)] ImmutableArray<byte[]> Data) : IFabricMessage;
}
