"""A group of Ray actors forming one torch.distributed world (ranks, master address, backend).

The driver talks to a group with ``run`` (same arguments on every rank) or ``run_per_rank``
(one argument tuple per rank) and gets the results in rank order. If any rank dies or raises, the
whole group is failed fast with an error naming the group and the rank, instead of the other
ranks hanging in a collective.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Sequence

from mindspeed_rl.workers.placement import DeviceRequest, create_placement_group


def set_worker_threads(ranks_on_node: int) -> int:
    """CPU threads per rank: MINDSPEED_RL_THREADS_PER_WORKER, else the node's cores shared by the
    ranks on that node (not the world: 16 ranks on 2 nodes share each node's cores 8 ways)."""
    import torch

    forced = os.environ.get("MINDSPEED_RL_THREADS_PER_WORKER")
    threads = int(forced) if forced else max(1, (os.cpu_count() or 1) // max(1, ranks_on_node))
    torch.set_num_threads(threads)
    return threads


class WorkerFailedError(RuntimeError):
    """A worker died or raised; the message names the group, rank, node and the cause."""


class BaseWorker:
    """Rank/world plumbing shared by every worker class (wrapped with ``ray.remote`` by the group)."""

    def __init__(self, group: str, rank: int, world_size: int, env: dict[str, str] | None = None):
        self.group, self.rank, self.world_size = group, rank, world_size
        os.environ.update(env or {})
        from mindspeed_rl.utils.quiet import quiet_third_party_warnings

        quiet_third_party_warnings()  # once per worker process, before megatron/vLLM are imported
        os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size)})

    def node_address(self) -> tuple[str, int]:
        import ray

        ip = ray.util.get_node_ip_address()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ip, port

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def place(self, node_local_rank: int, ranks_on_node: int) -> dict:
        """Take this rank's place on its node: device from Ray's assignment, node-local rank,
        threads (see ``platform.ray_devices``). Returns what was chosen."""
        from mindspeed_rl.platform import current_platform
        from mindspeed_rl.platform.ray_devices import this_worker_ordinal

        platform = current_platform()
        ordinal = this_worker_ordinal(platform)
        os.environ.update({"LOCAL_RANK": str(ordinal if ordinal is not None else node_local_rank),
                           "NODE_LOCAL_RANK": str(node_local_rank), "LOCAL_WORLD_SIZE": str(ranks_on_node)})
        threads = set_worker_threads(ranks_on_node)
        env = platform.visible_devices_env
        return {"rank": self.rank, "node_local_rank": node_local_rank, "local_world_size": ranks_on_node,
                "device": platform.device_name(), "visible": os.environ.get(env) if env else None,
                "threads": threads}

    def init_distributed(self, master_addr: str, master_port: int) -> None:
        from mindspeed_rl.platform import current_platform

        os.environ.update({"MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port)})
        current_platform().init_process_group(self.rank, self.world_size)

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> bool:
        return True

    def shutdown(self) -> None:
        """Release what the worker holds (engines, pools); subclasses extend it."""


class WorkerGroup:
    """``num_ranks`` actors of ``worker_cls`` in one placement group, one rank per bundle."""

    def __init__(
        self,
        worker_cls: type,
        request: DeviceRequest,
        init_args: Sequence[Any] = (),
        init_kwargs: dict | None = None,
        env: dict[str, str] | None = None,
        strategy: str = "PACK",
        placement_group=None,
        bundle_offset: int = 0,
        init_distributed: bool = True,
    ):
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.name = request.group
        self.world_size = request.num_ranks
        self.placement_group = placement_group or create_placement_group(request, strategy)
        self._owns_pg = placement_group is None
        resource_opts = {"num_cpus": request.cpus_per_rank}
        if request.resource == "GPU":
            resource_opts["num_gpus"] = request.devices_per_rank
        elif request.resource != "CPU":
            resource_opts["resources"] = {request.resource: request.devices_per_rank}
        else:
            resource_opts["num_cpus"] = max(request.cpus_per_rank, request.devices_per_rank)
        remote_cls = ray.remote(worker_cls)
        self.workers = [
            remote_cls.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.placement_group, placement_group_bundle_index=bundle_offset + rank
                ),
                name=None,
                max_restarts=0,
                **resource_opts,
            ).remote(self.name, rank, self.world_size, env, *init_args, **(init_kwargs or {}))
            for rank in range(self.world_size)
        ]
        node_ids = self.run("node_id")
        local_ranks = _local_ranks(node_ids)
        per_node = {n: node_ids.count(n) for n in node_ids}
        self.placement = self.run_per_rank("place", [(lr, per_node[n]) for lr, n in zip(local_ranks, node_ids)])
        if init_distributed:
            master_addr, master_port = self.get(self.workers[0].node_address.remote())
            self.run("init_distributed", master_addr, master_port)

    # ---- calls ---------------------------------------------------------------------------
    def run(self, method: str, *args, timeout: float | None = None, **kwargs) -> list[Any]:
        """Call ``method(*args, **kwargs)`` on every rank; results in rank order."""
        return self.get([getattr(w, method).remote(*args, **kwargs) for w in self.workers], timeout=timeout)

    def run_per_rank(self, method: str, per_rank_args: Sequence[tuple], timeout: float | None = None) -> list[Any]:
        """Call ``method(*per_rank_args[r])`` on rank r."""
        assert len(per_rank_args) == self.world_size, f"{self.name}: need one argument tuple per rank"
        return self.get([getattr(w, method).remote(*a) for w, a in zip(self.workers, per_rank_args)], timeout=timeout)

    def get(self, refs, timeout: float | None = None):
        """``ray.get`` that fails the group fast: the first rank error cancels the wait."""
        import ray

        single = not isinstance(refs, list)
        refs = [refs] if single else list(refs)
        index = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in ready:
                try:
                    ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - re-raised with the rank named
                    rank = index[ref] if len(refs) == self.world_size else "?"
                    self.kill()
                    raise WorkerFailedError(f"worker group '{self.name}' rank {rank} failed: {_short(exc)}") from exc
            if deadline is not None and time.monotonic() > deadline:
                raise WorkerFailedError(f"worker group '{self.name}': {len(pending)} rank(s) did not answer within {timeout:.0f}s")
        values = ray.get(refs)
        return values[0] if single else values

    def kill(self) -> None:
        import ray

        for w in self.workers:
            try:
                ray.kill(w, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass

    def shutdown(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        self.kill()
        if self._owns_pg:
            try:
                remove_placement_group(self.placement_group)
            except Exception:  # noqa: BLE001
                pass
        del ray


def _local_ranks(node_ids: list[str]) -> list[int]:
    seen: dict[str, int] = {}
    out = []
    for node in node_ids:
        out.append(seen.get(node, 0))
        seen[node] = seen.get(node, 0) + 1
    return out


def _short(exc: Exception) -> str:
    text = str(exc).strip()
    # RayActorError / RayTaskError carry the remote traceback; keep the cause line first.
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        return type(exc).__name__
    tail = lines[-1]
    return f"{type(exc).__name__}: {tail}" if len(lines) > 1 else f"{type(exc).__name__}: {lines[0]}"
