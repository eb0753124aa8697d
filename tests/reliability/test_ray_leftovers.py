"""Ray processes a killed driver left behind are found and stopped by the next
run (the marker names the dead driver's session; live runs' clusters are never touched)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mindspeed_rl.utils import ray_leftovers as rl
from tests.reliability.world import dead_pid

REPO = Path(__file__).resolve().parents[2]


def _leftover_tree(session: str) -> subprocess.Popen:
    """A stand-in for a cluster whose driver was killed: a head process naming the session on its
    command line (as gcs_server and raylet do) with a child that renamed itself (as ray:: workers
    do), in its own session so that it outlives nothing of ours."""
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)")
    return subprocess.Popen([sys.executable, "-c", code, f"--session-dir={session}"], start_new_session=True)


def _children(pid: int) -> list[int]:
    return [p for p, (ppid, _c) in rl._proc_table().items() if ppid == pid]


def test_leftovers_of_a_dead_driver_are_stopped_and_reported(tmp_path):
    session = f"/tmp/ray/session_2099-01-01_00-00-00_000000_{os.getpid()}"
    head = _leftover_tree(session)
    try:
        for _ in range(100):
            if _children(head.pid):
                break
            time.sleep(0.05)
        (child,) = _children(head.pid)
        markers = tmp_path / "ray"
        markers.mkdir()
        dead = dead_pid()
        (markers / f"driver-{dead}.json").write_text(json.dumps({"driver_pid": dead, "session_dir": session,
                                                                  "pids": [head.pid]}))
        live = markers / f"driver-{os.getppid()}.json"  # a running driver's cluster: left alone
        live.write_text(json.dumps({"driver_pid": os.getppid(), "session_dir": "/tmp/ray/session_live", "pids": []}))
        logs = []
        stopped = rl.clean_leftovers(marker_dir=markers, log=logs.append, grace_s=2.0)
        assert sorted(stopped) == sorted([head.pid, child])
        head.wait(timeout=10)
        assert not rl._running(child)
        assert any(f"driver pid {dead}" in m and "stopping them" in m for m in logs), logs
        assert not (markers / f"driver-{dead}.json").exists() and live.exists()
    finally:
        if head.poll() is None:
            head.kill()


def test_a_reused_pid_is_not_taken_for_a_ray_process(tmp_path):
    markers = tmp_path / "ray"
    markers.mkdir()
    dead = dead_pid()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (markers / f"driver-{dead}.json").write_text(json.dumps(
            {"driver_pid": dead, "session_dir": "/tmp/ray/session_gone_1", "pids": [bystander.pid]}))
        assert rl.clean_leftovers(marker_dir=markers, log=lambda m: None) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()


@pytest.mark.ray
@pytest.mark.slow
def test_a_real_local_cluster_is_recorded_and_nothing_survives_its_killed_driver(tmp_path):
    pytest.importorskip("ray")
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import ray\n"
        "from mindspeed_rl.utils.ray_leftovers import init_local_ray\n"
        "init_local_ray(num_cpus=1, include_dashboard=False, logging_level='ERROR')\n"
        "@ray.remote\n"
        "class Busy:\n"
        "    def pid(self):\n"
        "        import os; return os.getpid()\n"
        "    def spin(self):\n"
        "        t = time.time()\n"
        "        while time.time() - t < 120: pass\n"
        "b = Busy.remote()\n"
        "print('READY', ray.get(b.pid.remote()), flush=True)\n"
        "b.spin.remote()\n"
        "time.sleep(120)\n")
    env = dict(os.environ, MINDSPEED_RL_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), line
        worker = int(line.split()[1])
        (marker,) = (tmp_path / "state" / "ray").glob("driver-*.json")
        info = json.loads(marker.read_text())
        assert info["driver_pid"] == proc.pid
        cluster = rl.processes_of_cluster(info["session_dir"], info["pids"], info["raylet_pids"])
        assert worker in cluster and set(info["pids"]) <= set(cluster)  # the marker finds every process
        assert len(info["raylet_pids"]) == 1
        proc.kill()  # kill -9: no atexit, the marker stays
        proc.wait()
        assert marker.exists()
        rl.clean_leftovers(marker_dir=tmp_path / "state" / "ray", log=print, grace_s=5.0)
        # agents that were already exiting by themselves (their raylet gone) get a moment to finish
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and [p for p in cluster if rl._running(p)]:
            time.sleep(0.2)
        left = [p for p in cluster if rl._running(p)]
        assert not left, [(p, open(f"/proc/{p}/cmdline").read().replace("\0", " ")[:200]) for p in left]
        assert not marker.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
