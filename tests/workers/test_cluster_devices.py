"""Simulated clusters of 2 nodes x 2 fake GPUs / NPUs: every rank picks a device that exists in its
process (Ray narrows the visible devices to the one it assigned), node-local ranks are per node."""
import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from mindspeed_rl.platform.ray_devices import DeviceAssignmentError, device_ordinal  # noqa: E402
from mindspeed_rl.workers.placement import DeviceRequest  # noqa: E402
from mindspeed_rl.workers.worker_group import WorkerGroup  # noqa: E402
from tests.workers.ray_test_workers import DevicePlatformWorker  # noqa: E402


def test_device_ordinal_rule():
    assert device_ordinal(["3"], "3") == 0  # Ray narrowed visibility: the one visible device
    assert device_ordinal(["3"], "0,1,2,3") == 3  # several visible: position of the assigned id
    assert device_ordinal(["3"], None) == 3  # Ray told not to set the variable: the id itself
    assert device_ordinal([], "0") is None
    with pytest.raises(DeviceAssignmentError, match="does not list it"):
        device_ordinal(["3"], "0,1", "CUDA_VISIBLE_DEVICES")


@pytest.mark.ray
def test_ranks_pick_visible_devices_on_two_nodes():
    # each node: 2 fake GPUs and 2 fake NPUs (one cluster for both: a Ray cluster takes long to start)
    node = {"num_cpus": 2, "num_gpus": 2, "resources": {"NPU": 2}}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    cluster.add_node(**node)
    ray.init(address=cluster.address, include_dashboard=False, logging_level="ERROR")
    try:
        cluster.wait_for_nodes()
        for platform, resource in (("cuda", "GPU"), ("npu", "NPU")):
            group = WorkerGroup(DevicePlatformWorker, DeviceRequest("actor", 4, resource, cpus_per_rank=0.5),
                                init_args=(platform,), init_distributed=False)
            try:
                _check_group(group, platform, resource)
            finally:
                group.shutdown()
    finally:
        ray.shutdown()
        cluster.shutdown()


def _check_group(group, platform, resource):
    nodes = group.run("node_id")
    assert len(set(nodes)) == 2
    ids = group.run("accelerator_ids")
    for info, node_id, assigned in zip(group.placement, nodes, ids):
        visible = info["visible"].split(",")
        kind, ordinal = info["device"].split(":")
        assert kind == platform
        # the device the rank computes on exists in its process, and is the one Ray assigned
        assert int(ordinal) < len(visible), (platform, info, assigned)
        assert visible[int(ordinal)] == assigned[resource][0]
        assert info["local_world_size"] == nodes.count(node_id) == 2
    for node_id in set(nodes):
        on_node = [i for i, n in zip(group.placement, nodes) if n == node_id]
        assert sorted(i["node_local_rank"] for i in on_node) == [0, 1]
        assert len({i["visible"] for i in on_node}) == 2  # two different devices of the node
