namespace Fabric.Devices.Internal.Commands;

/// <summary>The device's view of its IOVA space while a command runs.</summary>
internal unsafe interface IDeviceMemoryView
{
    /// <summary>
    /// The host address of <paramref name="iova"/>. The caller guarantees [iova, iova + length) is mapped, contiguous in
    /// host memory and stays so until the command finishes; the kernels touch nothing outside the ranges they translate.
    /// </summary>
    byte* Translate(ulong iova, ulong length);
}
