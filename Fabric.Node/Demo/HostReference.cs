namespace Fabric.Node.Demo;

/// <summary>Host-side computations the demo and checks compare device results with, written independently of the kernels.</summary>
public static class HostReference
{
    /// <summary>CRC-32C (Castagnoli), bit by bit: the reference for the device's CHECKSUM command.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var value in data)
        {
            crc ^= value;
            for (var bit = 0; bit < 8; bit++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }
}
