"""Rollout engines behind one interface (HF transformers, vLLM); see ``base``.

Backends are imported lazily by :func:`build_rollout_engine` so that importing this package
pulls in neither transformers' model code nor vLLM.
"""
from mindspeed_rl.engine.rollout.base import (
    RolloutEngine,
    RolloutOutput,
    SamplingParams,
    build_rollout_engine,
)

__all__ = ["RolloutEngine", "RolloutOutput", "SamplingParams", "build_rollout_engine"]
