using Fabric.Core;
using Fabric.Core.Protocol;
using Fabric.Node.Jobs;

namespace Fabric.Tests.Jobs;

/// <summary>Scheduler.Choose on its own: a pure function of the demand and the view of the devices.</summary>
public sealed class SchedulerTests
{
    private static DeviceInfo Device(string node, int index, long free = 1 << 20, int queue = 0, DeviceStatus status = DeviceStatus.Operational, string kind = "fabric-sim") =>
        new(new DeviceId(node, index), kind, index, 4096, 2, 1 << 20, (1 << 20) - free, free, 0, 0, 0, 0, queue, 0, 0, 0, 0, false, Status: status);

    private static Scheduler.Demand Demand(long memory = 4096, Dictionary<DeviceId, long>? inputs = null, Dictionary<DeviceId, int>? running = null,
        string? node = null, string? kind = null, string? prefer = null) =>
        new("t", memory, inputs ?? [], node, kind, running ?? [], prefer);

    private static readonly HashSet<DeviceId> None = [];

    [Fact]
    public void The_device_holding_most_of_the_inputs_wins_over_an_idler_one()
    {
        DeviceInfo[] devices = [Device("a", 0), Device("b", 0), Device("c", 0)];
        var inputs = new Dictionary<DeviceId, long> { [new("b", 0)] = 8192, [new("c", 0)] = 4096 };

        Assert.Equal(new DeviceId("b", 0), Scheduler.Choose(Demand(inputs: inputs, running: new() { [new("b", 0)] = 5 }), devices, None));
    }

    [Fact]
    public void Without_locality_the_least_loaded_node_then_the_shortest_queue_is_chosen()
    {
        DeviceInfo[] devices = [Device("a", 0), Device("a", 1, queue: 0), Device("b", 0, queue: 3), Device("b", 1, queue: 1)];
        var running = new Dictionary<DeviceId, int> { [new("a", 0)] = 1 };

        Assert.Equal(new DeviceId("b", 1), Scheduler.Choose(Demand(running: running), devices, None));
    }

    [Fact]
    public void A_device_without_room_or_not_operational_or_of_another_kind_or_node_is_never_chosen()
    {
        DeviceInfo[] devices = [Device("a", 0, free: 1024), Device("b", 0, status: DeviceStatus.Malfunction), Device("c", 0, kind: "other"), Device("d", 0)];

        Assert.Equal(new DeviceId("d", 0), Scheduler.Choose(Demand(kind: "fabric-sim"), devices, None));
        Assert.Null(Scheduler.Choose(Demand(node: "b"), devices, None));
        Assert.Null(Scheduler.Choose(Demand(memory: 2 << 20), devices, None));
        // Input bytes already on a device need no room there.
        Assert.Equal(new DeviceId("a", 0), Scheduler.Choose(Demand(memory: 4096, inputs: new() { [new("a", 0)] = 4096 }, node: "a"), devices, None));
    }

    [Fact]
    public void Avoided_devices_are_taken_only_when_nothing_else_fits_and_a_preference_comes_first()
    {
        DeviceInfo[] devices = [Device("a", 0), Device("b", 0)];
        var avoid = new HashSet<DeviceId> { new("a", 0) };

        Assert.Equal(new DeviceId("b", 0), Scheduler.Choose(Demand(), devices, avoid));
        Assert.Equal(new DeviceId("a", 0), Scheduler.Choose(Demand(node: "a"), devices, avoid));
        Assert.Equal(new DeviceId("a", 0), Scheduler.Choose(Demand(prefer: "a/dev0", inputs: new() { [new("b", 0)] = 4096 }), devices, None));
    }

    [Fact]
    public void The_same_view_gives_the_same_choice_whatever_the_order_of_the_devices()
    {
        DeviceInfo[] devices = [Device("a", 0), Device("b", 0), Device("a", 1), Device("b", 1)];
        var first = Scheduler.Choose(Demand(), devices, None);

        Assert.Equal(new DeviceId("a", 0), first);
        Assert.Equal(first, Scheduler.Choose(Demand(), [.. devices.Reverse()], None));
    }
}
