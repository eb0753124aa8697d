"""The policy loss's own config: the knobs of ``algorithms.losses.grpo_loss``.

The run config's ``rl_config`` holds these keys (some under MindSpeed-RL names, e.g.
``kl_coef``); ``mindspeed_rl.config.components.policy_loss_config`` builds this class from it and
turns a ``LossConfigError`` into a config problem that names the ``rl_config`` key. Every field
has a default and a one-line ``help`` in its metadata; ``validate()`` runs on construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from .aggregation import AGG_MODES
from .registry import KL_ESTIMATORS, POLICY_LOSSES


def _help(default, text: str):
    return field(default=default, metadata={"help": text})


class LossConfigError(ValueError):
    """A bad value of one ``PolicyLossConfig`` field (``field``), with the fix."""

    def __init__(self, field: str, value, fix: str):
        self.field, self.value, self.fix = field, value, fix
        super().__init__(f"{field}={value!r}: {fix}")


def _fail(key: str, value, fix: str) -> None:
    raise LossConfigError(key, value, fix)


@dataclass
class PolicyLossConfig:
    """The loss the actor minimises: policy loss + KL loss - entropy bonus."""

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
        if self.policy_loss not in POLICY_LOSSES:
            _fail("policy_loss", self.policy_loss, f"choose one of {POLICY_LOSSES.names()}")
        for key in ("clip_ratio", "clip_ratio_low", "clip_ratio_high"):
            value = getattr(self, key)
            if value is not None and not 0 <= value:
                _fail(key, value, "must be >= 0 (e.g. 0.2)")
        low = self.clip_ratio if self.clip_ratio_low is None else self.clip_ratio_low
        if low >= 1:
            _fail("clip_ratio_low" if self.clip_ratio_low is not None else "clip_ratio", low,
                  "the lower clip range must be < 1 so that 1 - clip_ratio_low > 0")
        if self.clip_ratio_c is not None and not self.clip_ratio_c > 1:
            _fail("clip_ratio_c", self.clip_ratio_c, "the dual-clip bound must be > 1 (e.g. 3.0), or null to disable")
        if self.loss_agg_mode not in AGG_MODES:
            _fail("loss_agg_mode", self.loss_agg_mode, f"choose one of {list(AGG_MODES)}")
        if self.loss_norm_length is not None and self.loss_norm_length <= 0:
            _fail("loss_norm_length", self.loss_norm_length, "must be > 0 (the max response length) or null")
        if self.kl_loss_type not in KL_ESTIMATORS:
            _fail("kl_loss_type", self.kl_loss_type, f"choose one of {KL_ESTIMATORS.names()}")
        if self.kl_loss_coef < 0:
            _fail("kl_loss_coef", self.kl_loss_coef, "must be >= 0")


def field_help(config_cls) -> dict[str, str]:
    """``field name -> one-line help`` of a config dataclass (for docs and --help output)."""
    return {f.name: f.metadata.get("help", "") for f in fields(config_cls)}
