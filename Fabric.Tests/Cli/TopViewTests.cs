using System.Collections.Immutable;
using Fabric.Core;
using Fabric.Core.Gateway;
using Fabric.Core.Protocol;
using Fabric.Node.Cli;
using Spectre.Console;
using Xunit.Abstractions;

namespace Fabric.Tests.Cli;

/// <summary><c>fabric top</c>'s frame drawn from hand-made snapshots, read back as the plain text a terminal would show.</summary>
public sealed class TopViewTests(ITestOutputHelper output)
{
    private const long MiB = 1L << 20;
    private static readonly DateTimeOffset At = new(2026, 3, 1, 12, 34, 56, TimeSpan.Zero);

    private static DeviceInfo Device(string node, int index, long used, long total = 256 * MiB, double utilization = 0, int queued = 0, int contexts = 0,
        int exports = 0, int imports = 0, int waiters = 0, long completed = 0, long failed = 0, DeviceStatus status = DeviceStatus.Operational,
        string? failure = null) =>
        new(new DeviceId(node, index), "fabric-sim", index, 4096, 4, total, used, total - used, 0, 1, contexts, exports, queued, completed, failed, 0,
            utilization, status == DeviceStatus.InReset, waiters, imports, status, failure);

    private static JobView Job(string id, string status, int done, int tasks, DateTimeOffset? submitted = null, DateTimeOffset? finished = null,
        string name = "job", int runs = 1, string? error = null, params JobView.StageView[] stages) =>
        new(id, name, status, error, runs, ["n1"], tasks, done, [], [], submitted ?? At.AddMinutes(-10), finished, 10, [.. stages]);

    private static readonly NodeList TwoNodes = new("n1",
        [new("n1", "akka.tcp://fabric@127.0.0.1:4053", "Up", true, 2, "http://127.0.0.1:5080"),
         new("n2", "akka.tcp://fabric@127.0.0.1:4054", "Leaving", false, 1, "http://127.0.0.1:5081")],
        [new("n3", "akka.tcp://fabric@127.0.0.1:4055", "downed", At.AddSeconds(-30).ToUnixTimeMilliseconds())]);

    private static TopSnapshot Answered(ImmutableArray<DeviceInfo> devices, ImmutableArray<JobView> jobs, string gateway = "http://127.0.0.1:5080") =>
        new(At, gateway, devices, TwoNodes, jobs) { ReadAt = At };

    /// <summary>The frame as plain text, <paramref name="width"/> columns wide, one string per line.</summary>
    private string[] Draw(TopSnapshot snapshot, int width, string? hint = null)
    {
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(text), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = width;
        console.Write(TopView.Render(snapshot, width, hint));
        output.WriteLine(text.ToString());
        return [.. text.ToString().Split('\n').Select(l => l.TrimEnd('\r'))];
    }

    /// <summary>A table row's cells, trimmed; empty for a line that is no row.</summary>
    private static string[] Cells(string line) => line.StartsWith('│') ? [.. line.Split('│')[1..^1].Select(c => c.Trim())] : [];

    /// <summary>The row whose first cell is <paramref name="first"/> (exactly one).</summary>
    private static string[] Row(string[] lines, string first) => Cells(lines.Single(l => Cells(l) is [var c, ..] && c == first));

    private static int LineOf(string[] lines, string first) => Array.FindIndex(lines, l => Cells(l) is [var c, ..] && c == first);

    [Fact]
    public void A_frame_shows_who_answered_then_each_device_with_its_memory_bar_and_counters_each_node_and_each_job()
    {
        var snapshot = Answered(
            [Device("n2", 0, 0, status: DeviceStatus.Malfunction, failure: "DeviceActor threw InvalidOperationException"),
             Device("n1", 1, 240 * MiB, status: DeviceStatus.InReset),
             Device("n1", 0, 96 * MiB, utilization: 0.42, queued: 3, contexts: 2, exports: 1, waiters: 1, completed: 1234, failed: 7)],
            [Job("job-done", "Completed", 4, 4, finished: At.AddMinutes(-2), name: "three-stage", runs: 2, stages: [new(0, 2, 2), new(1, 1, 1), new(2, 1, 1)]),
             Job("job-run", "Running", 3, 10, submitted: At.AddSeconds(-90), name: "wide", stages: [new(0, 4, 3), new(1, 6, 0)])]);

        var lines = Draw(snapshot, 200, hint: "q or Ctrl-C quits");

        Assert.Equal("fabric top — reading http://127.0.0.1:5080 (n1) · 12:34:56 · nodes 1/2 up · jobs 1 running · 3 devices · q or Ctrl-C quits", lines[0]);
        // The devices in order of node and index; 96 of 256 MiB is 37.5 %: 4 of 10 cells; 240 of 256 MiB: 9.
        Assert.Equal(["device", "status", "memory used/total", "util", "queued/queues", "contexts", "exports", "imports", "waiters", "completed", "failed"],
            Cells(lines[LineOf(lines, "n1/dev0") - 2]));
        Assert.Equal(["n1/dev0", "ok", "████░░░░░░ 96/256 MiB", "42%", "3/4", "2", "1", "0", "1", "1234", "7"], Row(lines, "n1/dev0"));
        Assert.Equal(["n1/dev1", "in reset", "█████████░ 240/256 MiB"], Row(lines, "n1/dev1")[..3]);
        Assert.Equal(["n2/dev0", "failed DeviceActor threw InvalidOperationException", "░░░░░░░░░░ 0/256 MiB"], Row(lines, "n2/dev0")[..3]);
        Assert.True(LineOf(lines, "n1/dev0") < LineOf(lines, "n1/dev1") && LineOf(lines, "n1/dev1") < LineOf(lines, "n2/dev0"));
        // The node whose gateway answered is marked; the removed one is named with why and when.
        Assert.Equal(["n1 (read)", "Up", "yes", "2", "akka.tcp://fabric@127.0.0.1:4053", "http://127.0.0.1:5080"], Row(lines, "n1 (read)"));
        Assert.Equal(["n2", "Leaving", "no", "1", "akka.tcp://fabric@127.0.0.1:4054", "http://127.0.0.1:5081"], Row(lines, "n2"));
        Assert.Contains("removed lately: n3 (downed, 30 s ago)", lines);
        // Running jobs first; 3 of 10 tasks fill 6 of 20 cells.
        Assert.Contains(lines, l => l.Trim() == "Jobs (1 running, 1 ended)");
        Assert.Equal(["job-run", "Running", "██████░░░░░░░░░░░░░░ 3/10", "wide", "3/4 0/6", "1", "running 1:30", ""], Row(lines, "job-run"));
        Assert.Equal(["job-done", "Completed", "████████████████████ 4/4", "three-stage", "2/2 1/1 1/1", "2", "ended 2 min ago", ""], Row(lines, "job-done"));
        Assert.True(LineOf(lines, "job-run") < LineOf(lines, "job-done"));
        Assert.DoesNotContain(lines, l => l.Contains("left out"));
    }

    [Fact]
    public void On_80_columns_every_line_fits_the_essential_device_columns_stay_and_a_line_names_those_left_out()
    {
        var snapshot = Answered(
            [Device("n1", 0, 96 * MiB, utilization: 0.42, queued: 3, contexts: 2, completed: 1234),
             Device("node-with-a-long-name", 1, 240 * MiB, status: DeviceStatus.InReset)],
            [Job("a-job-with-a-rather-long-identifier", "Running", 1, 3, name: "a long job name", stages: [new(0, 3, 1)])]);

        var lines = Draw(snapshot, 80);

        Assert.All(lines, l => Assert.True(l.Length <= 80, $"{l.Length} columns: {l}"));
        var header = Cells(lines[LineOf(lines, "n1/dev0") - 2]);
        Assert.Equal(["device", "status", "memory used/total", "util"], header[..4]);
        Assert.Equal(["n1/dev0", "ok", "████░░░░░░ 96/256 MiB", "42%"], Row(lines, "n1/dev0")[..4]);
        Assert.Equal(["node-with-a-long-name/dev1", "in reset", "█████████░ 240/256 MiB"], Row(lines, "node-with-a-long-name/dev1")[..3]);
        // Under the devices table a line (wrapped like any text) names exactly the columns its header lacks.
        string[] all = ["device", "status", "memory used/total", "util", "queued/queues", "contexts", "exports", "imports", "waiters", "completed", "failed"];
        var leftOut = all.Except(header).ToArray();
        var from = Array.FindIndex(lines, l => l.StartsWith("left out at 80 columns: ", StringComparison.Ordinal));
        var to = Array.FindIndex(lines, l => l.Trim() == "Nodes (2)");
        Assert.True(from > LineOf(lines, "node-with-a-long-name/dev1") && to > from, $"no line under the devices table names what was left out");
        Assert.Equal($"left out at 80 columns: {string.Join(", ", leftOut)}", string.Join(" ", lines[from..to].Select(l => l.Trim())));
        Assert.Contains("failed", leftOut);
        Assert.Equal(["a-job-with-a-rather-long-identifier", "Running", "███████░░░░░░░░░░░░░ 1/3"], Row(lines, "a-job-with-a-rather-long-identifier")[..3]);
    }

    [Fact]
    public void Running_jobs_come_first_oldest_first_then_the_last_five_ended_latest_first_and_a_note_counts_the_rest()
    {
        var ended = Enumerable.Range(1, 7).Select(i => Job($"ended-{i}", i == 3 ? "Failed" : "Completed", 2, 2, finished: At.AddMinutes(-i),
            error: i == 3 ? "EIO: task t failed on n1/dev0" : null));
        var snapshot = Answered([Device("n1", 0, 0)],
            [.. ended, Job("run-b", "Running", 0, 5, submitted: At.AddSeconds(-30)), Job("run-a", "Running", 5, 5, submitted: At.AddSeconds(-60))]);

        var lines = Draw(snapshot, 200);

        var order = lines.Select(Cells).Where(c => c is [var id, ..] && (id.StartsWith("run-") || id.StartsWith("ended-"))).Select(c => c[0]).ToArray();
        Assert.Equal(["run-a", "run-b", "ended-1", "ended-2", "ended-3", "ended-4", "ended-5"], order);
        Assert.Contains(lines, l => l.Trim() == "Jobs (2 running, 7 ended)");
        Assert.Contains("2 ended earlier not shown (fabric jobs lists them)", lines);
        var failed = Row(lines, "ended-3");
        Assert.Equal(("Failed", "EIO: task t failed on n1/dev0"), (failed[1], failed[^1]));
        Assert.Equal("░░░░░░░░░░░░░░░░░░░░ 0/5", Row(lines, "run-b")[2]);
        Assert.Contains("jobs 2 running", lines[0]);
    }

    [Fact]
    public void While_no_gateway_answers_the_header_names_those_tried_and_why_and_the_last_answer_stays_marked_as_old()
    {
        var stale = Answered([Device("n1", 0, 64 * MiB)], [Job("j", "Running", 1, 2)]);
        var snapshot = new TopSnapshot(At.AddSeconds(5), null, stale.Devices, stale.Nodes, stale.Jobs)
        {
            Tried = ["http://127.0.0.1:5080", "http://127.0.0.1:5081"],
            Problem = "cannot reach the Fabric gateway at http://127.0.0.1:5081/: Connection refused",
            ReadAt = At,
        };

        var lines = Draw(snapshot, 200);

        Assert.Equal("fabric top — no gateway answers (tried http://127.0.0.1:5080, http://127.0.0.1:5081) · 12:35:01 · retrying", lines[0]);
        Assert.Equal("cannot reach the Fabric gateway at http://127.0.0.1:5081/: Connection refused", lines[1]);
        Assert.Equal("the tables below are the last answer, read at 12:34:56 (5 s ago)", lines[2]);
        Assert.Equal(["n1/dev0", "ok", "███░░░░░░░ 64/256 MiB"], Row(lines, "n1/dev0")[..3]);
        Assert.Equal("n1", Row(lines, "n1")[0]); // no node is marked as read now
    }

    [Fact]
    public void Before_anything_was_read_a_frame_is_its_header_alone()
    {
        var snapshot = new TopSnapshot(At, null, [], null, []) { Tried = ["http://127.0.0.1:9"], Problem = "cannot reach it" };

        var lines = Draw(snapshot, 120).Where(l => l.Length > 0).ToArray();

        Assert.Equal(["fabric top — no gateway answers (tried http://127.0.0.1:9) · 12:34:56 · retrying", "cannot reach it"], lines);
    }

    [Fact]
    public void After_a_switch_the_header_says_from_which_gateway_to_which_when_and_why_and_a_failed_jobs_read_is_said_under_the_jobs()
    {
        var snapshot = Answered([Device("n2", 0, 0)], [Job("j", "Running", 1, 2)], gateway: "http://127.0.0.1:5081") with
        {
            Nodes = TwoNodes with { Self = "n2" },
            Switched = new TopSwitch("http://127.0.0.1:5080", "http://127.0.0.1:5081", At.AddSeconds(-6), "cannot reach http://127.0.0.1:5080/; trying http://127.0.0.1:5081"),
            JobsProblem = "EBUSY: the job index did not answer in time",
        };

        var lines = Draw(snapshot, 200);

        Assert.StartsWith("fabric top — reading http://127.0.0.1:5081 (n2) · 12:34:56", lines[0]);
        Assert.Equal("switched from http://127.0.0.1:5080 to http://127.0.0.1:5081 at 12:34:50 (cannot reach http://127.0.0.1:5080/; trying http://127.0.0.1:5081)", lines[1]);
        Assert.Equal("n2 (read)", Row(lines, "n2 (read)")[0]);
        Assert.Contains("jobs not read: EBUSY: the job index did not answer in time", lines);
        Assert.Equal("Running", Row(lines, "j")[1]);
    }

    [Fact]
    public void While_the_jobs_are_not_answered_yet_the_last_ones_read_are_shown_and_a_line_says_since_when_they_are_asked()
    {
        var snapshot = Answered([Device("n1", 0, 0)], [Job("j", "Running", 1, 2)]) with { JobsAskedAt = At.AddSeconds(-3) };

        var lines = Draw(snapshot, 200);

        Assert.Equal("Running", Row(lines, "j")[1]);
        Assert.Contains("jobs asked 3 s ago, no answer yet: the jobs shown are the last read", lines);
    }

    [Fact]
    public void A_refusal_is_said_as_the_gateway_refusing_with_its_code_and_sentence()
    {
        var snapshot = new TopSnapshot(At, null, [], null, [])
        {
            Tried = ["http://10.0.0.9:5080"],
            Refused = true,
            Problem = "EACCES: GET /devices from 10.0.0.7 needs this gateway's API token",
        };

        var lines = Draw(snapshot, 200).Where(l => l.Length > 0).ToArray();

        Assert.Equal(["fabric top — http://10.0.0.9:5080 refuses · 12:34:56 · retrying", "EACCES: GET /devices from 10.0.0.7 needs this gateway's API token"], lines);
    }

    [Fact]
    public void Empty_sections_are_one_line_each()
    {
        var snapshot = new TopSnapshot(At, "http://127.0.0.1:5080", [], new NodeList("n1", [], []), []) { ReadAt = At };

        var lines = Draw(snapshot, 120).Where(l => l.Length > 0).ToArray();

        Assert.Equal(["fabric top — reading http://127.0.0.1:5080 (n1) · 12:34:56 · nodes 0/0 up · jobs 0 running · 0 devices",
            "Devices (0): no devices", "Nodes (0)", "Jobs (0 running, 0 ended): no jobs"], lines);
    }
}
