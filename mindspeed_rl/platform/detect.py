"""Detect the accelerator once per process.

Order: an explicit ``MINDSPEED_RL_PLATFORM`` (npu | cuda | cpu), then torch_npu with a visible NPU,
then CUDA, then CPU. torch_npu is only imported when it is installed, and a torch_npu that cannot
import (no CANN) is reported, not silently skipped, when the user asked for NPU.
"""
from __future__ import annotations

import importlib.util
import os

import torch

from mindspeed_rl.platform.base import Platform

PLATFORMS = {
    "npu": Platform(name="npu", device_type="npu", dist_backend="hccl", ray_resource="NPU",
                   visible_devices_env="ASCEND_RT_VISIBLE_DEVICES"),
    "cuda": Platform(name="cuda", device_type="cuda", dist_backend="nccl", ray_resource="GPU",
                     visible_devices_env="CUDA_VISIBLE_DEVICES"),
    "cpu": Platform(name="cpu", device_type="cpu", dist_backend="gloo", ray_resource=None),
}
ENV_VAR = "MINDSPEED_RL_PLATFORM"

_current: Platform | None = None


def _npu_available() -> bool:
    if importlib.util.find_spec("torch_npu") is None:
        return False
    try:
        import torch_npu  # noqa: F401  (registers torch.npu)
    except Exception:  # noqa: BLE001 - torch_npu without CANN raises assorted errors
        return False
    return hasattr(torch, "npu") and torch.npu.is_available()


def detect_platform_name() -> str:
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced:
        if forced not in PLATFORMS:
            raise ValueError(f"{ENV_VAR}={forced!r} is not a platform; use one of {sorted(PLATFORMS)}")
        if forced == "npu":
            from mindspeed_rl.utils.imports import require

            require("torch_npu", purpose=f"{ENV_VAR}=npu")
        return forced
    if _npu_available():
        return "npu"
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def current_platform() -> Platform:
    """The platform of this process (detected on first call, then cached)."""
    global _current
    if _current is None:
        _current = PLATFORMS[detect_platform_name()]
    return _current


def reset_platform() -> None:
    """Forget the cached platform (tests that switch MINDSPEED_RL_PLATFORM)."""
    global _current
    _current = None
