"""Ray processes a killed driver left behind, found and stopped by the next run.

A driver that starts its own local Ray cluster writes a marker (its pid and the Ray session
directory) under ``~/.cache/mindspeed_rl/ray`` and removes it on a clean exit. ``kill -9`` skips
that clean-up, and the cluster's gcs_server, raylet, dashboard agents and workers keep running.
The next driver reads the markers of dead drivers, stops every process whose command line names
that session directory, and says so.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Callable, List, Optional

from mindspeed_rl.utils.fs import pid_alive, remove_quietly

MARKER_DIR = Path(os.environ.get("MINDSPEED_RL_STATE_DIR", Path.home() / ".cache" / "mindspeed_rl")) / "ray"


def _marker(pid: int, marker_dir: Path) -> Path:
    return marker_dir / f"driver-{pid}.json"


def record_local_cluster(session_dir: str, pids: List[int] = (), marker_dir: Path = MARKER_DIR,
                         raylet_pids: List[int] = ()) -> Optional[Path]:
    """Note that this process owns the local Ray cluster at ``session_dir`` (``pids``: its head
    processes; ``raylet_pids``: the raylets, which every worker and agent names in RAY_RAYLET_PID)."""
    try:
        marker_dir.mkdir(parents=True, exist_ok=True)
        path = _marker(os.getpid(), marker_dir)
        path.write_text(json.dumps({"driver_pid": os.getpid(), "session_dir": session_dir, "pids": list(pids),
                                    "raylet_pids": list(raylet_pids), "started": time.time()}))
        return path
    except OSError:
        return None  # bookkeeping only: never stop a run for it


def init_local_ray(log: Callable[[str], None] = print, **kwargs) -> None:
    """``ray.init`` of a local cluster, after stopping what killed runs left, and noted so the next
    run can do the same for this one."""
    import atexit

    import ray

    clean_leftovers(log=log)
    # "local": a new cluster of our own, even where a `ray start` cluster runs on this machine
    # (ray.init would otherwise attach to it and then refuse num_cpus)
    ray.init(**{"address": "local", **kwargs})
    try:
        session = ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:  # a Ray without this private handle: nothing to note
        return
    node = ray._private.worker._global_node
    procs = {kind: [info.process.pid for info in infos if getattr(info, "process", None) is not None]
             for kind, infos in getattr(node, "all_processes", {}).items()}
    raylets = procs.get("raylet", [])
    # Record the agents too: they rename themselves (ray::DashboardAgent, no session in the command
    # line) and, once their raylet dies, are no longer its children, so only their pid finds them.
    pids = processes_of_cluster(session, [pid for group in procs.values() for pid in group], raylets)
    if record_local_cluster(session, pids, raylet_pids=raylets):
        atexit.register(forget_local_cluster)


def forget_local_cluster(marker_dir: Path = MARKER_DIR) -> None:
    remove_quietly([_marker(os.getpid(), marker_dir)], log=lambda _m: None)


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(errors="replace")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        table[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return table


def _raylet_of(pid: int) -> Optional[int]:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RAY_RAYLET_PID="):
            try:
                return int(item.split(b"=", 1)[1])
            except ValueError:
                return None
    return None


def processes_of_cluster(session_dir: str, head_pids: List[int] = (), raylet_pids: List[int] = ()) -> List[int]:
    """Pids of a Ray cluster: its head processes that still run Ray (a reused pid is not taken),
    processes whose command line names the session, workers and agents whose RAY_RAYLET_PID is the
    cluster's raylet (they rename themselves ``ray::...`` and outlive a killed raylet as orphans),
    and all their descendants."""
    table = _proc_table()
    name = os.path.basename(session_dir.rstrip("/")) or session_dir
    roots = {pid for pid, (_ppid, cmd) in table.items() if name.startswith("session_") and name in cmd}
    roots |= {pid for pid in head_pids if pid in table and "ray" in table[pid][1]}
    raylets = set(raylet_pids)
    if raylets:
        roots |= {pid for pid, (_ppid, cmd) in table.items() if "ray" in cmd and _raylet_of(pid) in raylets}
    found, frontier = set(roots), list(roots)
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _cmd) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    found.discard(os.getpid())
    return sorted(found)


def clean_leftovers(marker_dir: Path = MARKER_DIR, log: Callable[[str], None] = print,
                    grace_s: float = 5.0) -> List[int]:
    """Stop the Ray processes of dead drivers' clusters; returns the pids stopped."""
    if not marker_dir.is_dir():
        return []
    stopped: List[int] = []
    for path in sorted(marker_dir.glob("driver-*.json")):
        try:
            info = json.loads(path.read_text())
            driver, session = int(info["driver_pid"]), str(info["session_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            remove_quietly([path], log=lambda _m: None)
            continue
        if driver == os.getpid() or pid_alive(driver):
            continue  # a live run's cluster
        pids = processes_of_cluster(session, [int(p) for p in info.get("pids", [])],
                                    [int(p) for p in info.get("raylet_pids", [])])
        if pids:
            log(f"found {len(pids)} Ray process(es) left by a killed run (driver pid {driver}, session {session}); "
                f"stopping them: {pids}")
            _stop(pids, grace_s)
            left = [p for p in pids if _running(p)]
            if left:
                log(f"warning: could not stop Ray processes {left}; stop them by hand (kill {' '.join(map(str, left))})")
            stopped.extend(p for p in pids if p not in left)
        remove_quietly([path], log=lambda _m: None)
    return stopped


def _stop(pids: List[int], grace_s: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        for p in pids:
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_running(p) for p in pids):
            time.sleep(0.1)
        if not any(_running(p) for p in pids):
            return


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed child of ours stays a zombie until reaped)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
