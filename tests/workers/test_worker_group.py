"""Worker groups on Ray: world setup, fail-fast on a dead or raising rank, multi-node placement."""
import time

import pytest

ray = pytest.importorskip("ray")

from mindspeed_rl.workers.placement import DeviceRequest, PlacementError, create_placement_group  # noqa: E402
from mindspeed_rl.workers.worker_group import WorkerFailedError, WorkerGroup  # noqa: E402
from tests.workers.ray_test_workers import SumWorker  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}})
    yield
    ray.shutdown()


def _pythonpath():
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])


def test_group_forms_a_world(local_ray):
    group = WorkerGroup(SumWorker, DeviceRequest("sum", 2, "CPU"))
    try:
        assert group.run("all_reduce_rank") == [(3.0, 0), (3.0, 1)]
    finally:
        group.shutdown()


def test_dead_worker_is_a_clear_error_within_seconds(local_ray):
    group = WorkerGroup(SumWorker, DeviceRequest("actor", 2, "CPU"))
    start = time.monotonic()
    with pytest.raises(WorkerFailedError) as info:
        group.run("die_after", 1.0)
    elapsed = time.monotonic() - start
    assert elapsed < 30, elapsed
    assert "'actor'" in str(info.value) and "rank 1" in str(info.value)
    group.shutdown()


def test_raising_worker_names_rank_and_cause(local_ray):
    group = WorkerGroup(SumWorker, DeviceRequest("reference", 2, "CPU"))
    start = time.monotonic()
    with pytest.raises(WorkerFailedError) as info:
        group.run("raise_error")
    assert time.monotonic() - start < 30
    assert "rank 0" in str(info.value) and "bad batch on rank 0" in str(info.value)
    group.shutdown()


def test_unsatisfiable_group_fails_with_names(local_ray):
    with pytest.raises(PlacementError) as info:
        create_placement_group(DeviceRequest("huge", 2, "NPU"), timeout_s=3)
    assert "huge" in str(info.value) and "NPU" in str(info.value)
