"""Cluster bootstrap for the driver: join or start Ray with the workers' runtime environment."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def worker_pythonpath() -> str:
    """This checkout first, then the driver's PYTHONPATH: workers import the code the driver runs."""
    return os.pathsep.join(p for p in [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")] if p)


def runtime_env() -> dict:
    """Environment variables every worker gets (``platform.runtime_env``'s documented rule and
    the platform's defaults, plus PYTHONPATH)."""
    from mindspeed_rl.platform import current_platform
    from mindspeed_rl.platform.runtime_env import worker_env

    platform = os.environ.get("MINDSPEED_RL_PLATFORM") or current_platform().name
    return {"env_vars": {**worker_env(platform.lower()), "PYTHONPATH": worker_pythonpath()}}


def init_ray(cfg, address: str | None = None) -> None:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local Ray sized for the run.
    Does nothing when Ray is already initialised (tests, notebooks)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = dict(runtime_env=runtime_env(), include_dashboard=False, logging_level="WARNING")
    if address:
        ray.init(address=address, **kwargs)
        return
    rl = cfg.rl_config
    wanted = rl.actor_resource.num_devices + (0 if rl.colocate_actor_ref else rl.reference_resource.num_devices)
    if cfg.critic_config is not None:
        wanted += rl.critic_resource.num_devices
    from mindspeed_rl.utils.ray_leftovers import init_local_ray

    # a killed earlier run's Ray processes are stopped first, and this run's are noted
    init_local_ray(num_cpus=max(os.cpu_count() or 1, wanted + 1), **kwargs)
