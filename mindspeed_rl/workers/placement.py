"""Placement groups over the devices the platform has (NPU as a custom resource, GPU, or CPU)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from mindspeed_rl.platform import current_platform


class PlacementError(RuntimeError):
    """The cluster cannot hold a worker group; the message names the group and what is missing."""


@dataclass(frozen=True)
class DeviceRequest:
    """One bundle per rank: ``devices_per_rank`` of ``resource`` plus ``cpus_per_rank`` CPUs."""

    group: str
    num_ranks: int
    resource: str  # 'NPU' | 'GPU' | 'CPU'
    cpus_per_rank: float = 1.0
    devices_per_rank: float = 1.0

    def bundles(self) -> list[dict[str, float]]:
        if self.resource == "CPU":
            return [{"CPU": max(self.cpus_per_rank, self.devices_per_rank)} for _ in range(self.num_ranks)]
        return [{self.resource: self.devices_per_rank, "CPU": self.cpus_per_rank} for _ in range(self.num_ranks)]


def device_resource() -> str:
    """The Ray resource that counts one device on this platform ('CPU' when there is none)."""
    return current_platform().ray_resource or "CPU"


def create_placement_group(request: DeviceRequest, strategy: str = "PACK", timeout_s: float = 120.0):
    """Reserve one bundle per rank; fail with the group name and the shortfall instead of hanging."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    pg = placement_group(request.bundles(), strategy=strategy, name=f"mindspeed_rl/{request.group}")
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(pg)
        have = ray.available_resources()
        raise PlacementError(
            f"worker group '{request.group}' needs {request.num_ranks} bundles of {request.bundles()[0]} "
            f"({strategy}); the cluster has {{{', '.join(f'{k}: {v:g}' for k, v in sorted(have.items()) if '_group_' not in k and not k.startswith('node:'))}}} "
            f"available after {timeout_s:.0f}s. Fix: add nodes or lower rl_config.*_resource.num_devices"
        )
    return pg


def bundle_nodes(pg) -> list[str]:
    """Node id of each bundle (for checking where a group landed)."""
    from ray.util.placement_group import placement_group_table

    table = placement_group_table(pg)
    mapping = table.get("bundles_to_node_id", {})
    return [mapping[i] for i in sorted(mapping)]


def wait_for_resources(resource: str, count: float, timeout_s: float = 600.0, poll_s: float = 5.0) -> None:
    """Block until the cluster has ``count`` of ``resource`` (node 0 waiting for worker nodes)."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        have = ray.cluster_resources().get(resource, 0)
        if have >= count:
            return
        if time.monotonic() > deadline:
            raise PlacementError(f"waited {timeout_s:.0f}s for {count:g} {resource}; the cluster has {have:g}")
        time.sleep(poll_s)


def plan_worker_groups(cfg, resource: str) -> list[DeviceRequest]:
    """The device requests of a GRPO run: the actor (hosting its rollout engines), when not
    colocated the reference, and a PPO critic, each on devices of its own."""
    rl = cfg.rl_config
    requests = [DeviceRequest("actor_rollout", rl.actor_resource.num_devices, resource)]
    if not rl.colocate_actor_ref:
        requests.append(DeviceRequest("reference", rl.reference_resource.num_devices, resource))
    if getattr(cfg, "critic_config", None) is not None:
        requests.append(DeviceRequest("critic", rl.critic_resource.num_devices, resource))
    return requests
