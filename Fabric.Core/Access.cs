namespace Fabric.Core;

/// <summary>Permissions of a mapping, an export or a memory operand.</summary>
[Flags]
public enum Access
{
    None = 0,
    Read = 1,
    Write = 2,
    ReadWrite = Read | Write,
}
