namespace Fabric.Core.Commands;

/// <summary>
/// Operation codes of the Fabric command buffer format (<see cref="CommandBufferFormat"/>). Each opcode has one fixed
/// command size (<see cref="CommandBufferFormat.SizeOf"/>); the payload layouts are described on each member and in
/// <c>Fabric.Core/Commands/README.md</c>.
/// </summary>
public enum Opcode : ushort
{
    /// <summary>FILL (size 32): dst u64 @8, length u64 @16, pattern u32 @24, reserved u32 @28. Writes <c>length</c> bytes
    /// repeating the 4-byte little-endian pattern from dst; a tail shorter than 4 bytes gets the pattern's first bytes.</summary>
    Fill = 1,

    /// <summary>COPY (size 32): dst u64 @8, src u64 @16, length u64 @24. memmove semantics: the ranges may overlap.</summary>
    Copy = 2,

    /// <summary>ADD_F32 (size 40): dst u64 @8, a u64 @16, b u64 @24, count u64 @32. dst[i] = a[i] + b[i].</summary>
    AddF32 = 3,

    /// <summary>SCALE_F32 (size 40): dst u64 @8, src u64 @16, count u64 @24, alpha f32 @32, reserved u32 @36.
    /// dst[i] = alpha * src[i].</summary>
    ScaleF32 = 4,

    /// <summary>AXPY_F32 (size 40): y u64 @8, x u64 @16, count u64 @24, alpha f32 @32, reserved u32 @36.
    /// y[i] = alpha * x[i] + y[i].</summary>
    AxpyF32 = 5,

    /// <summary>MATMUL_F32 (size 48): c u64 @8, a u64 @16, b u64 @24, m u32 @32, n u32 @36, k u32 @40, reserved u32 @44.
    /// C(m×n) = A(m×k)·B(k×n), row-major float32.</summary>
    MatMulF32 = 6,

    /// <summary>REDUCE_SUM_F32 (size 32): dst u64 @8, src u64 @16, count u64 @24. dst (one float32) = the sum of src,
    /// accumulated in double precision.</summary>
    ReduceSumF32 = 7,

    /// <summary>CHECKSUM (size 32): dst u64 @8, src u64 @16, length u64 @24. dst (u32, little-endian) = CRC-32C
    /// (Castagnoli) of the src bytes.</summary>
    Checksum = 8,

    /// <summary>SIGNAL_FENCE (size 16): slot u32 @8, reserved u32 @12. Signals the submission's out-fence number slot.</summary>
    SignalFence = 9,

    /// <summary>WAIT_FENCE (size 16): slot u32 @8, timeout_ms u32 @12. Waits for the submission's in-fence number slot;
    /// a timeout of 0 means the device default.</summary>
    WaitFence = 10,
}
