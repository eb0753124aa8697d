"""A simulated two-node Ray cluster: worker groups land across both nodes as the config asks."""
import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from mindspeed_rl.config import check_resources, load_config  # noqa: E402
from mindspeed_rl.workers.placement import bundle_nodes, plan_worker_groups  # noqa: E402
from mindspeed_rl.workers.worker_group import WorkerGroup  # noqa: E402
from tests.workers.ray_test_workers import SumWorker  # noqa: E402

pytestmark = pytest.mark.ray


def test_groups_span_two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "resources": {"NPU": 2}})
    cluster.add_node(num_cpus=3, resources={"NPU": 2})
    ray.init(address=cluster.address, include_dashboard=False, logging_level="ERROR")
    groups = []
    try:
        cluster.wait_for_nodes()
        # 4 NPUs: actor TP2 over 2 devices on... ask for actor on 2, reference on its own 2.
        cfg = load_config("grpo_tiny_cpu", [
            "rl_config.actor_resource.num_devices=2", "rl_config.colocate_actor_ref=false",
            "rl_config.reference_resource.num_devices=2",
            "actor_config.tensor_model_parallel_size=2", "generate_config.infer_tensor_parallel_size=2",
        ])
        check_resources(cfg, ray.cluster_resources(), "NPU")
        requests = plan_worker_groups(cfg, "NPU")
        assert [(r.group, r.num_ranks) for r in requests] == [("actor_rollout", 2), ("reference", 2)]
        for req in requests:
            # PACK keeps a group's ranks on one node when they fit; the two groups then fill both nodes.
            groups.append(WorkerGroup(SumWorker, req, strategy="STRICT_PACK", init_distributed=False))
        nodes = [set(bundle_nodes(g.placement_group)) for g in groups]
        assert all(len(n) == 1 for n in nodes)  # each group on a single node (TP stays intra-node)
        assert nodes[0] != nodes[1]  # the two groups on different nodes
        actual = [set(g.run("node_id")) for g in groups]
        assert actual == nodes
        # a group that must spread covers both nodes
        spread = WorkerGroup(SumWorker, type(requests[0])("spread", 2, "CPU"), strategy="STRICT_SPREAD")
        groups.append(spread)
        assert len(set(spread.run("node_id"))) == 2
        assert [v for v, _ in spread.run("all_reduce_rank")] == [3.0, 3.0]
    finally:
        for g in groups:
            g.shutdown()
        ray.shutdown()
        cluster.shutdown()
