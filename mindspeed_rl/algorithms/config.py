"""Config sections for the GRPO algorithm knobs.

``AlgorithmConfig`` belongs under ``rl_config`` (advantages, KL in the reward) and
``PolicyLossConfig`` under ``actor_config`` (the loss the actor minimises). Every field has a
default and a one-line ``help`` in its metadata; ``validate()`` (run on construction) raises a
ValueError that names the config key and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from .aggregation import AGG_MODES
from .registry import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, POLICY_LOSSES


def _help(default, text: str):
    return field(default=default, metadata={"help": text})


def _fail(section: str, key: str, value, fix: str) -> None:
    raise ValueError(f"{section}.{key}={value!r}: {fix}")


@dataclass
class AlgorithmConfig:
    """rl_config: how rewards become advantages."""

    SECTION = "rl_config"

    adv_estimator: str = _help("grpo", "advantage estimator: grpo (mean/std per prompt group), dr_grpo (no std), rloo")
    adv_epsilon: float = _help(1e-6, "added to the group std before dividing (grpo)")
    use_kl_in_reward: bool = _help(False, "subtract kl_coef * KL(pi_old || ref) per token from the reward")
    kl_penalty: str = _help("k1", "KL estimator for the reward penalty: k1|kl, abs, k2|mse, k3|low_var_kl")
    kl_coef: float = _help(0.001, "coefficient of the per-token KL reward penalty")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        s = self.SECTION
        if self.adv_estimator not in ADVANTAGE_ESTIMATORS:
            _fail(s, "adv_estimator", self.adv_estimator, f"choose one of {ADVANTAGE_ESTIMATORS.names()}")
        if not self.adv_epsilon > 0:
            _fail(s, "adv_epsilon", self.adv_epsilon, "must be > 0 (e.g. 1e-6)")
        if self.kl_penalty not in KL_ESTIMATORS:
            _fail(s, "kl_penalty", self.kl_penalty, f"choose one of {KL_ESTIMATORS.names()}")
        if self.kl_coef < 0:
            _fail(s, "kl_coef", self.kl_coef, "must be >= 0")


@dataclass
class PolicyLossConfig:
    """actor_config: the loss the actor minimises (policy loss + KL loss - entropy bonus)."""

    SECTION = "actor_config"

    policy_loss: str = _help("vanilla", "policy loss: vanilla|clip (PPO/GRPO clip, clip-higher, dual clip), gspo")
    clip_ratio: float = _help(0.2, "symmetric clip range eps: ratio clipped to [1-eps, 1+eps]")
    clip_ratio_low: Optional[float] = _help(None, "lower clip range (default clip_ratio); ratio >= 1 - clip_ratio_low")
    clip_ratio_high: Optional[float] = _help(None, "upper clip range (default clip_ratio); DAPO clip-higher uses 0.28")
    clip_ratio_c: Optional[float] = _help(None, "dual-clip bound c > 1 for negative advantages (e.g. 3.0); None = off")
    loss_agg_mode: str = _help("token-mean", f"loss aggregation over the global batch: {', '.join(AGG_MODES)}")
    loss_norm_length: Optional[int] = _help(None, "constant L of seq-mean-token-sum-norm (set to max response length)")
    use_kl_loss: bool = _help(True, "add kl_loss_coef * KL(pi || ref) to the loss (GRPO); needs reference log-probs")
    kl_loss_coef: float = _help(0.001, "coefficient of the KL loss term")
    kl_loss_type: str = _help("low_var_kl", "KL estimator for the loss: k1|kl, abs, k2|mse, k3|low_var_kl")
    entropy_coeff: float = _help(0.0, "entropy bonus coefficient: loss -= entropy_coeff * entropy")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        s = self.SECTION
        if self.policy_loss not in POLICY_LOSSES:
            _fail(s, "policy_loss", self.policy_loss, f"choose one of {POLICY_LOSSES.names()}")
        for key in ("clip_ratio", "clip_ratio_low", "clip_ratio_high"):
            value = getattr(self, key)
            if value is not None and not 0 <= value:
                _fail(s, key, value, "must be >= 0 (e.g. 0.2)")
        low = self.clip_ratio if self.clip_ratio_low is None else self.clip_ratio_low
        if low >= 1:
            _fail(s, "clip_ratio_low" if self.clip_ratio_low is not None else "clip_ratio", low,
                  "the lower clip range must be < 1 so that 1 - clip_ratio_low > 0")
        if self.clip_ratio_c is not None and not self.clip_ratio_c > 1:
            _fail(s, "clip_ratio_c", self.clip_ratio_c, "the dual-clip bound must be > 1 (e.g. 3.0), or null to disable")
        if self.loss_agg_mode not in AGG_MODES:
            _fail(s, "loss_agg_mode", self.loss_agg_mode, f"choose one of {list(AGG_MODES)}")
        if self.loss_norm_length is not None and self.loss_norm_length <= 0:
            _fail(s, "loss_norm_length", self.loss_norm_length, "must be > 0 (the max response length) or null")
        if self.kl_loss_type not in KL_ESTIMATORS:
            _fail(s, "kl_loss_type", self.kl_loss_type, f"choose one of {KL_ESTIMATORS.names()}")
        if self.kl_loss_coef < 0:
            _fail(s, "kl_loss_coef", self.kl_loss_coef, "must be >= 0")


def field_help(config_cls) -> dict[str, str]:
    """``field name -> one-line help`` of a config dataclass (for docs and --help output)."""
    return {f.name: f.metadata.get("help", "") for f in fields(config_cls)}
