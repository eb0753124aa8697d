"""The environment every Ray worker gets: a documented rule, not a list someone must extend.

Rule (``worker_env``):
1. forward every driver variable whose name starts with one of ``FORWARD_PREFIXES`` (this
   suite's, the collective libraries', the accelerator runtimes', torch's, Hugging Face's, vLLM's,
   the thread pools') or is in ``FORWARD_NAMES``;
2. never forward a variable in ``NEVER_FORWARD``: the visible-devices variables are set by Ray
   per worker (forwarding the driver's would put every worker on the same devices);
3. add the platform's defaults (``PLATFORM_DEFAULTS``) for what the driver did not set, so a
   launcher or user can override any of them by exporting it.
"""
from __future__ import annotations

import os
from typing import Mapping

FORWARD_PREFIXES = (
    "MINDSPEED_RL_", "HCCL_", "NCCL_", "GLOO_", "TP_SOCKET_", "ASCEND_", "PYTORCH_", "TORCH_", "CUDA_",
    "HF_", "TRANSFORMERS_", "TOKENIZERS_", "VLLM_", "OMP_", "MKL_", "WANDB_",
)
FORWARD_NAMES = ("TASK_QUEUE_ENABLE", "CPU_AFFINITY_CONF", "LD_PRELOAD", "HYDRA_FULL_ERROR")
NEVER_FORWARD = ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "ASCEND_VISIBLE_DEVICES",
                 "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")

# MindSpeed-RL's runtime environment on Ascend (memory fragmentation, HCCL timeouts and ports,
# task queue, CPU binding); CUDA: one connection per device keeps Megatron's comm/compute overlap ordered.
PLATFORM_DEFAULTS = {
    "npu": {
        "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
        "HCCL_CONNECT_TIMEOUT": "1800",
        "HCCL_EXEC_TIMEOUT": "3600",
        "HCCL_IF_BASE_PORT": "48000",
        "HCCL_BUFFSIZE": "256",
        "TASK_QUEUE_ENABLE": "2",
        "CPU_AFFINITY_CONF": "1",
        "CUDA_DEVICE_MAX_CONNECTIONS": "1",
    },
    "cuda": {"CUDA_DEVICE_MAX_CONNECTIONS": "1"},
    "cpu": {},
}
ALWAYS = {"TOKENIZERS_PARALLELISM": "false"}


def forwarded(name: str) -> bool:
    """Whether the rule forwards the driver's ``name`` to workers."""
    if name in NEVER_FORWARD:
        return False
    return name in FORWARD_NAMES or name.startswith(FORWARD_PREFIXES)


def worker_env(platform_name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables for the workers' runtime env (see module doc); the driver's values win."""
    environ = os.environ if environ is None else environ
    env = {**ALWAYS, **PLATFORM_DEFAULTS.get(platform_name, {})}
    env.update({k: v for k, v in environ.items() if forwarded(k)})
    return env
