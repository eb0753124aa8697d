"""examples/grpo/ray_cluster.sh end to end on CPU: one node at MASTER_ADDR=127.0.0.1, and two Ray
nodes on this host (loopback) each running the launcher; one training iteration of the tiny
config; Ray stopped when training succeeds and when it fails (no process of the run's Ray session
left). Each run uses its own Ray temp dir and ports and stops only its own Ray processes."""
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from mindspeed_rl.utils.net import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "examples" / "grpo" / "ray_cluster.sh"
pytestmark = [
    pytest.mark.ray, pytest.mark.slow,
    # NOT YET SEEN PASSING: on the shared 2-core box it was written on (load 40-100), `ray start`
    # gave up on its raylet (Ray's fixed 30 s registration wait) on every attempt. Run it with
    # MINDSPEED_RL_LAUNCHER_TEST=1 on an unshared machine before enabling it in CI.
    pytest.mark.skipif(os.environ.get("MINDSPEED_RL_LAUNCHER_TEST") != "1",
                       reason="launcher end-to-end test not yet verified; set MINDSPEED_RL_LAUNCHER_TEST=1"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.trainer.tiny_run import build_assets, tiny_overrides

    work = build_assets(tmp_path_factory.mktemp("launcher"))
    return work, tiny_overrides(work) + ["megatron_training.train_iters=1", "actor_config.mini_batch_size=4"]


def _env(nnodes, **extra):
    tmp = f"/tmp/rl{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths live under it
    os.makedirs(tmp)
    env = dict(os.environ, NNODES=str(nnodes), DEVICE="CPU", DEVICES_PER_NODE="1", MASTER_ADDR="127.0.0.1",
               CONFIG_NAME="grpo_tiny_cpu", RAY_STOP="own", RAY_TMPDIR=tmp, RAY_PORT=str(free_port()),
               MINDSPEED_RL_THREADS_PER_WORKER="1", JOIN_TIMEOUT="300", WAIT_TIMEOUT="300",
               # a worker node leaves soon after the head is gone
               RAY_gcs_rpc_server_reconnect_timeout_s="10")
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def _left_over(tmp: str) -> list[str]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(tmp in part for part in (p.info["cmdline"] or [])):
                out.append(f"{p.info['pid']}: {' '.join(p.info['cmdline'])[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def _launch(env, args, log):
    return subprocess.Popen(["bash", str(LAUNCHER), *args], env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT)


def _finish(proc, timeout, tmp):
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
    deadline = time.monotonic() + 30
    while _left_over(tmp) and time.monotonic() < deadline:
        time.sleep(1)
    return proc.returncode, _left_over(tmp)


def test_single_node_trains_and_stops_ray_on_success_and_failure(tiny, tmp_path):
    work, overrides = tiny
    env = _env(1)  # no NODE_RANK: one node at a loopback MASTER_ADDR is the head
    with open(tmp_path / "ok.log", "w") as log:
        code, left = _finish(_launch(env, overrides, log), 900, env["RAY_TMPDIR"])
    text = (tmp_path / "ok.log").read_text()
    assert code == 0, text[-4000:]
    assert (work / "runs" / "metrics.jsonl").read_text().count("\n") == 1
    assert "node 0 stopped Ray (exit 0)" in text and not left, left

    env = _env(1)
    with open(tmp_path / "fail.log", "w") as log:
        code, left = _finish(_launch(env, overrides + [f"megatron_training.data_path={work}/missing"], log), 400,
                             env["RAY_TMPDIR"])
    text = (tmp_path / "fail.log").read_text()
    assert code != 0 and "missing" in text, text[-4000:]
    assert f"node 0 stopped Ray (exit {code})" in text and not left, left


def test_two_nodes_on_loopback(tiny, tmp_path):
    work, overrides = tiny
    env = _env(2)
    overrides = overrides + [f"megatron_training.log_dir={tmp_path / 'runs2'}"]
    with open(tmp_path / "node1.log", "w") as log1, open(tmp_path / "node0.log", "w") as log0:
        node1 = _launch({**env, "NODE_RANK": "1"}, [], log1)
        node0 = _launch({**env, "NODE_RANK": "0"}, overrides, log0)
        code0, _ = _finish(node0, 500, env["RAY_TMPDIR"] + "/nothing")
        code1, left = _finish(node1, 120, env["RAY_TMPDIR"])
    text0 = (tmp_path / "node0.log").read_text()
    assert code0 == 0, text0[-4000:] + (tmp_path / "node1.log").read_text()[-2000:]
    assert "on 2 node(s)" in text0  # the 2 actor ranks needed the second node's CPU
    assert (tmp_path / "runs2" / "metrics.jsonl").read_text().count("\n") == 1
    assert code1 == 0 and not left, left
