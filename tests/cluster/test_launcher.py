"""examples/grpo/ray_cluster.sh end to end on CPU: one node at MASTER_ADDR=127.0.0.1, and two Ray
nodes on this host (loopback) each running the launcher; one training iteration of the tiny
config; Ray stopped when training succeeds and when it fails (no process of the run's Ray session
left). A shipped trainer script (examples/grpo/grpo_trainer_qwen25_7b.sh) goes through the same
launcher to a --dry-run. Each run uses its own Ray temp dir and ports and stops only its own Ray
processes; whatever a run leaves behind fails the test and is then killed by pid.

Timeouts are generous for a loaded 2-core box (Ray start-up, worker start and one iteration can
take minutes there) but bounded, each run well inside CI's 900 s per test."""
import os
import shutil
import signal
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
pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.trainer.tiny_run import build_assets, tiny_overrides

    work = build_assets(tmp_path_factory.mktemp("launcher"))
    return work, tiny_overrides(work) + ["megatron_training.train_iters=1", "actor_config.mini_batch_size=4"]


def _left_over(tmp: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(tmp in part for part in (p.info["cmdline"] or [])):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def _describe(procs) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid}: {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture
def ray_env():
    """Environment for one launcher run (its own Ray temp dir and port); afterwards every process of
    that Ray session still alive is killed by pid, so a failing run cannot leak into the next test."""
    made = []

    def make(nnodes, **extra):
        tmp = f"/tmp/rl{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths live under it
        os.makedirs(tmp)
        made.append(tmp)
        env = dict(os.environ, NNODES=str(nnodes), DEVICE="CPU", DEVICES_PER_NODE="1", MASTER_ADDR="127.0.0.1",
                   CONFIG_NAME="grpo_tiny_cpu", RAY_STOP="own", RAY_TMPDIR=tmp, RAY_PORT=str(free_port()),
                   MINDSPEED_RL_THREADS_PER_WORKER="1", JOIN_TIMEOUT="300", WAIT_TIMEOUT="300",
                   RAY_START_ATTEMPTS="5",
                   # a worker node leaves soon after the head is gone
                   RAY_gcs_rpc_server_reconnect_timeout_s="10")
        env.pop("RAY_ADDRESS", None)
        env.update(extra)
        return env

    yield make
    for tmp in made:
        procs = _left_over(tmp)
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def _launch(env, args, log, script=LAUNCHER):
    # its own process group: a test that times out can stop the launcher and everything under it
    return subprocess.Popen(["bash", str(script), *args], env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _finish(proc, timeout, tmp):
    """The launcher's exit code once it ends (killed at ``timeout``), and what of its Ray session
    is still alive 30 s later."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 30
    while _left_over(tmp) and time.monotonic() < deadline:
        time.sleep(1)
    return proc.returncode, _describe(_left_over(tmp))


def test_single_node_trains_and_stops_ray(tiny, ray_env, tmp_path):
    work, overrides = tiny
    env = ray_env(1)  # no NODE_RANK: one node at a loopback MASTER_ADDR is the head
    start = time.monotonic()
    with open(tmp_path / "ok.log", "w") as log:
        code, left = _finish(_launch(env, overrides, log), 720, env["RAY_TMPDIR"])
    text = (tmp_path / "ok.log").read_text()
    print(f"single node, 1 iteration: {time.monotonic() - start:.0f} s")
    assert code == 0, text[-4000:]
    assert "on 1 node(s)" in text
    assert (work / "runs" / "metrics.jsonl").read_text().count("\n") == 1
    assert "node 0 stopped Ray (exit 0)" in text and not left, left


def test_single_node_stops_ray_when_training_fails(tiny, ray_env, tmp_path):
    work, overrides = tiny
    env = ray_env(1)
    start = time.monotonic()
    with open(tmp_path / "fail.log", "w") as log:
        code, left = _finish(_launch(env, overrides + [f"megatron_training.data_path={work}/missing"], log), 600,
                             env["RAY_TMPDIR"])
    text = (tmp_path / "fail.log").read_text()
    print(f"single node, failing run: {time.monotonic() - start:.0f} s")
    assert code not in (0, None) and "missing" in text, text[-4000:]
    assert "cluster ready" in text, text[-4000:]  # it failed in training, after Ray was up
    assert f"node 0 stopped Ray (exit {code})" in text and not left, left


def test_two_nodes_on_loopback(tiny, ray_env, tmp_path):
    work, overrides = tiny
    env = ray_env(2)
    overrides = overrides + [f"megatron_training.log_dir={tmp_path / 'runs2'}"]
    start = time.monotonic()
    with open(tmp_path / "node1.log", "w") as log1, open(tmp_path / "node0.log", "w") as log0:
        node1 = _launch({**env, "NODE_RANK": "1"}, [], log1)
        node0 = _launch({**env, "NODE_RANK": "0"}, overrides, log0)
        code0, _ = _finish(node0, 720, env["RAY_TMPDIR"] + "/nothing")
        code1, left = _finish(node1, 240, env["RAY_TMPDIR"])  # REJOIN_WINDOW (60 s) after the head stops
    text0, text1 = (tmp_path / "node0.log").read_text(), (tmp_path / "node1.log").read_text()
    print(f"two loopback nodes, 1 iteration: {time.monotonic() - start:.0f} s")
    assert code0 == 0, text0[-4000:] + text1[-2000:]
    assert "on 2 node(s)" in text0  # the 2 actor ranks needed the second node's CPU
    assert (tmp_path / "runs2" / "metrics.jsonl").read_text().count("\n") == 1
    assert "node 0 stopped Ray (exit 0)" in text0
    assert code1 == 0 and not left, (left, text1[-2000:])


def test_trainer_script_goes_through_the_launcher(ray_env, tmp_path):
    """A shipped trainer script as a user runs it (its own CONFIG_NAME, NNODES and device count),
    up to a --dry-run of its plan on a 1-node CPU cluster with 8 fake devices."""
    env = ray_env(1, NNODES="1")
    env.pop("CONFIG_NAME")
    env.pop("DEVICES_PER_NODE")
    with open(tmp_path / "script.log", "w") as log:
        code, left = _finish(_launch(env, ["--dry-run"], log, ROOT / "examples" / "grpo" / "grpo_trainer_qwen25_7b.sh"),
                             400, env["RAY_TMPDIR"])
    text = (tmp_path / "script.log").read_text()
    assert code == 0, text[-4000:]
    assert "cluster ready: 9 CPUs on 1 node(s)" in text, text[-4000:]
    assert "actor: 8 ranks" in text and "verdict: FITS" in text, text[-4000:]
    assert "node 0 stopped Ray (exit 0)" in text and not left, left
