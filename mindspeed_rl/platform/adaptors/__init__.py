"""Per-platform Megatron adaptors, applied once per process before any model is built."""
from __future__ import annotations

_applied: set[str] = set()


def apply(platform_name: str) -> None:
    if platform_name in _applied:
        return
    from mindspeed_rl.utils.imports import require

    require("megatron.core", purpose="the Megatron training engine")
    if platform_name == "npu":
        # MindSpeed patches megatron-core for Ascend (fused kernels, hccl, torch_npu devices).
        require("mindspeed.megatron_adaptor", purpose="running megatron-core on Ascend NPU")
    elif platform_name == "cpu":
        from mindspeed_rl.platform.adaptors import cpu_megatron

        cpu_megatron.apply()
    # CUDA: megatron-core runs as published.
    _applied.add(platform_name)
