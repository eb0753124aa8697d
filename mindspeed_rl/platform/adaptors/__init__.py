"""Per-platform Megatron adaptors, applied once per process before any model is built.

Ascend: ``mindspeed.megatron_adaptor`` patches megatron-core when it is imported, so it must be
imported *before* megatron (a ``from megatron.core... import x`` taken earlier keeps the unpatched
``x``). MindSpeed reads its feature flags (``--use-flash-attn``, fused RMSNorm / SwiGLU / RoPE)
from ``sys.argv``; in a Ray worker that is Ray's own command line, so the flags from the run config
are written into ``sys.argv`` before the import (as MindSpeed-RL does).
"""
from __future__ import annotations

import sys

_applied: set[str] = set()

# run-config key (megatron_training.*) -> MindSpeed command-line flag
MINDSPEED_FLAGS = {
    "use_flash_attn": "--use-flash-attn",
    "use_fused_rmsnorm": "--use-fused-rmsnorm",
    "use_fused_swiglu": "--use-fused-swiglu",
    "use_fused_rotary_pos_emb": "--use-fused-rotary-pos-emb",
}


class AdaptorOrderError(RuntimeError):
    """megatron was imported before the MindSpeed adaptor could patch it."""


def mindspeed_flags(cfg) -> list[str]:
    """MindSpeed feature flags switched on in ``cfg.megatron_training`` (GRPOConfig)."""
    mt = cfg.megatron_training
    return [flag for key, flag in MINDSPEED_FLAGS.items() if getattr(mt, key, False)]


def real_transformer_engine() -> bool:
    """A real Transformer Engine is installed (not the dummy module MindSpeed registers on Ascend)."""
    import importlib.metadata

    for dist_name in ("transformer_engine", "transformer-engine", "transformer_engine_torch"):
        try:
            importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            continue
        try:
            import transformer_engine.pytorch  # noqa: F401
        except Exception:  # noqa: BLE001 - any import failure means: no TE
            return False
        return True
    return False


def apply_mindspeed(flags: list[str] | None = None) -> None:
    """Import ``mindspeed.megatron_adaptor`` first, with its flags in ``sys.argv``."""
    from mindspeed_rl.utils.imports import require

    early = sorted(m for m in sys.modules if m == "megatron" or m.startswith("megatron."))
    if early:
        raise AdaptorOrderError(
            f"megatron was imported before mindspeed.megatron_adaptor ({early[:3]}...): MindSpeed's patches "
            "would miss it. Fix: apply the platform's Megatron adaptor (current_platform().apply_megatron_adaptor) "
            "before anything imports megatron")
    # MindSpeed parses sys.argv (parse_known_args): keep the program name, replace Ray's arguments.
    sys.argv = [sys.argv[0] if sys.argv else "mindspeed_rl"] + list(flags or [])
    require("mindspeed.megatron_adaptor", purpose="running megatron-core on Ascend NPU")


def apply(platform_name: str, mindspeed_flags: list[str] | None = None) -> None:
    if platform_name in _applied:
        return
    from mindspeed_rl.utils.imports import require

    if platform_name == "npu":
        apply_mindspeed(mindspeed_flags)
    require("megatron.core", purpose="the Megatron training engine")
    if platform_name == "cpu":
        from mindspeed_rl.platform.adaptors import cpu_megatron

        cpu_megatron.apply()
    # CUDA: megatron-core runs as published.
    _applied.add(platform_name)
