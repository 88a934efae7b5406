namespace Fabric.Core;

/// <summary>Flags of a device-memory allocation (like habanalabs' HL_MEM_* flags). Unknown bits → EINVAL.</summary>
[Flags]
public enum AllocationFlags
{
    None = 0,
    /// <summary>One physically contiguous range (every Fabric allocation is; the flag is accepted and honoured).</summary>
    Contiguous = 1,
    /// <summary>The buffer may never be exported as a dma-buf (an export fails with EPERM).</summary>
    NoExport = 2,
}
