"""Which device a Ray worker computes on, from the device ids Ray assigned to it.

A Ray actor that asks for one ``GPU`` (``NPU``) gets an accelerator id and, unless told not to,
Ray narrows ``CUDA_VISIBLE_DEVICES`` (``ASCEND_RT_VISIBLE_DEVICES``) to that id. Inside the
process the device is then ordinal 0, not the worker's position on its node: choosing
``cuda:<node-local rank>`` fails with "invalid device ordinal" for every rank but the first.

The rule (``device_ordinal``): the ordinal is the position of the assigned id in the visible
list; when the variable is unset (Ray told not to set it) the assigned id is the ordinal.
``LOCAL_RANK`` is set to that ordinal, which is what torch and vLLM's external launcher read to
pick a device; the rank among the group's ranks on the node is ``NODE_LOCAL_RANK``, and their
number ``LOCAL_WORLD_SIZE``.
"""
from __future__ import annotations

import os


class DeviceAssignmentError(RuntimeError):
    """The device Ray assigned is not among the visible devices (the message names both)."""


def assigned_ids(resource: str | None) -> list[str]:
    """Accelerator ids Ray assigned to this worker for ``resource`` ('GPU', 'NPU'); [] on CPU."""
    if not resource:
        return []
    import ray

    ids = ray.get_runtime_context().get_accelerator_ids().get(resource, [])
    return [str(i) for i in ids]


def device_ordinal(ids: list[str], visible: str | None, env_name: str = "visible devices") -> int | None:
    """Ordinal of the first assigned device among the visible ones (see module doc); None: no device."""
    if not ids:
        return None
    if visible is None or not visible.strip():
        return int(ids[0])
    listed = [v.strip() for v in visible.split(",") if v.strip()]
    if ids[0] not in listed:
        raise DeviceAssignmentError(
            f"Ray assigned device {ids[0]} but {env_name}={visible!r} does not list it; "
            f"do not override {env_name} in the worker environment")
    return listed.index(ids[0])


def this_worker_ordinal(platform) -> int | None:
    """The device ordinal of the calling Ray worker on ``platform`` (None on CPU)."""
    if platform.ray_resource is None:
        return None
    env = platform.visible_devices_env
    return device_ordinal(assigned_ids(platform.ray_resource), os.environ.get(env) if env else None, env or "")
