"""Every collective of the engine, its checkpoints and weight sync gets tensors its group serves on
a GPU or NPU cluster (declared backends, checked on CPU; see engine.collectives)."""
import pytest
import torch

from mindspeed_rl.engine.collectives import CollectiveDeviceError, served_device_types, strict_collectives
from mindspeed_rl.platform.detect import PLATFORMS
from mindspeed_rl.testing import run_distributed


def test_served_devices_from_backend_strings():
    assert served_device_types("cpu:gloo,cuda:nccl") == {"cpu", "cuda"}
    assert served_device_types("nccl") == {"cuda"}
    assert served_device_types("hccl") == {"npu"}
    assert served_device_types("gloo") == {"cpu"}
    # what the platforms initialise their worlds with: a CPU backend beside the device's
    assert served_device_types(PLATFORMS["cuda"].backend_spec) == {"cpu", "cuda"}
    assert served_device_types(PLATFORMS["npu"].backend_spec) == {"cpu", "npu"}


def _cpu_broadcasts_on_declared(rank, world_size):
    """A CPU tensor broadcast on groups with the declared cluster backends; the errors, per case."""
    import torch.distributed as dist

    out = {}
    for case, spec, group_backend in (("nccl world", "nccl", None), ("cpu+nccl world", "cpu:gloo,cuda:nccl", None),
                                      ("nccl subgroup", "cpu:gloo,cuda:nccl", "nccl")):
        with strict_collectives(spec):
            group = dist.new_group([0, 1], backend=group_backend) if group_backend else None
            try:
                dist.broadcast(torch.tensor([rank]), src=0, group=group)
                out[case] = None
            except CollectiveDeviceError as exc:
                out[case] = str(exc)
    return out


@pytest.mark.dist
def test_check_refuses_cpu_tensors_on_device_only_groups():
    out = run_distributed(_cpu_broadcasts_on_declared, 2, timeout=120)[0]
    assert "No backend type associated with device type cpu" in out["nccl world"] and "'nccl'" in out["nccl world"]
    assert out["cpu+nccl world"] is None  # subgroups inherit the world's backends ...
    assert "'nccl'" in out["nccl subgroup"]  # ... unless created with their own


@pytest.mark.dist
@pytest.mark.parametrize("cluster_platform", ["cuda"])  # npu: same spec shape, see the unit test
def test_engine_checkpoint_and_weight_sync_collectives(cluster_platform, tmp_path):
    from tests.cluster.collective_ranks import engine_under_strict_collectives

    calls = run_distributed(engine_under_strict_collectives, 2, cluster_platform, 2, 1, str(tmp_path / "ckpt"),
                            timeout=300)
    # the check saw the engine's TP all-reduces, weight sync's all-gathers and the checkpoint's broadcast
    for name in ("all_reduce", "all_gather", "broadcast"):
        assert calls[0].get(name, 0) > 0, calls[0]
