using System.Text;

namespace Fabric.Node.Hosting;

/// <summary>
/// Holds back what a node's libraries print to the console while it starts. A start that fails on a port prints the
/// same failure three times over with stack traces (Akka's log of the bind, Akka.Hosting's report to stdout, the
/// generic host's log of it); the node says it in one line of its own instead and <see cref="Drop"/>s the rest. A start
/// that succeeds <see cref="Release"/>s it all, as it was written. Holds the process's <see cref="Console.Out"/> and
/// <see cref="Console.Error"/> from <see cref="Hold"/> on.
/// </summary>
internal sealed class StartupConsole
{
    private readonly Gate _out;
    private readonly Gate _error;

    private StartupConsole(TextWriter output, TextWriter error)
    {
        _out = new Gate(output);
        _error = new Gate(error);
        Error = error;
    }

    /// <summary>The real standard error, for the line that says why the start failed.</summary>
    public TextWriter Error { get; }

    public static StartupConsole Hold()
    {
        var console = new StartupConsole(Console.Out, Console.Error);
        Console.SetOut(console._out);
        Console.SetError(console._error);
        return console;
    }

    /// <summary>Writes out what was held, and lets everything written from now on through.</summary>
    public void Release()
    {
        _out.Open();
        _error.Open();
    }

    /// <summary>Forgets what was held, and everything written from now on (the process is about to end).</summary>
    public void Drop()
    {
        _out.Shut();
        _error.Shut();
    }

    private sealed class Gate(TextWriter target) : TextWriter
    {
        private readonly object _lock = new();
        private StringBuilder? _held = new();
        private bool _closed;

        public override Encoding Encoding => target.Encoding;

        public void Open()
        {
            lock (_lock)
            {
                if (_held is null) return;
                target.Write(_held.ToString());
                target.Flush();
                _held = null;
            }
        }

        public void Shut()
        {
            lock (_lock)
            {
                _held = null;
                _closed = true;
            }
        }

        public override void Write(char value) => Pass(held => held.Append(value), () => target.Write(value));
        public override void Write(string? value) => Pass(held => held.Append(value), () => target.Write(value));
        public override void Write(char[] buffer, int index, int count) => Pass(held => held.Append(buffer, index, count), () => target.Write(buffer, index, count));

        public override void Flush()
        {
            lock (_lock)
                if (_held is null && !_closed) target.Flush();
        }

        private void Pass(Action<StringBuilder> hold, Action write)
        {
            lock (_lock)
            {
                if (_closed) return;
                if (_held is not null) hold(_held);
                else write();
            }
        }
    }
}
