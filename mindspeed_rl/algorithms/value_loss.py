"""The critic's clipped value loss (PPO, Schulman et al. 2017; verl's ``compute_value_loss``)::

    v_clip = clip(v, v_old - eps, v_old + eps)
    loss_t = 0.5 * max((v - R)^2, (v_clip - R)^2)

token-mean over the valid tokens of the whole global mini-batch (``inputs.normalizers``), so the
update does not depend on micro-batch size or DP size. Registered as the engine loss ``value``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .losses import LOSSES, Loss, LossInputs, LossResult
from .metrics import WeightedMetric

VALUE_METRICS = ("vf_loss", "vf_clipfrac", "vpred_mean")


@dataclass(frozen=True)
class ValueLossConfig:
    cliprange_value: float = 0.5  # critic_config.cliprange_value (verl's default)

    def __post_init__(self):
        if not self.cliprange_value > 0:
            raise ValueError(f"cliprange_value={self.cliprange_value}: must be > 0 (critic_config.cliprange_value)")


def value_loss_terms(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, cliprange_value: float):
    """Per-token ``(0.5 * max(unclipped, clipped) squared error, clipped-was-larger flag)``."""
    # exactly ``values`` where the clip is not active: old + (v - old) can differ from v by an ulp,
    # and that rounding would decide the clip flag (loss2 > loss1) of unclipped tokens, so that
    # vf_clipfrac changed with the micro-batching
    delta = values - old_values
    clipped = torch.where(delta.abs() > cliprange_value,
                          old_values + delta.clamp(-cliprange_value, cliprange_value), values)
    loss1 = (values - returns) ** 2
    loss2 = (clipped - returns) ** 2
    return 0.5 * torch.maximum(loss1, loss2), (loss2 > loss1)


def clipped_value_loss(config: ValueLossConfig, inputs: LossInputs) -> LossResult:
    values = inputs.values
    mask = inputs.get("response_mask").bool()
    zero = torch.zeros((), device=values.device, dtype=values.dtype)
    per_token, clipped = value_loss_terms(values, inputs.get("old_values"), inputs.get("returns"),
                                          config.cliprange_value)
    total = torch.where(mask, per_token, zero).sum()
    count = mask.sum()
    metrics = {
        "vf_loss": WeightedMetric.from_parts(total, count),
        "vf_clipfrac": WeightedMetric.from_parts((clipped & mask).sum(), count),
        "vpred_mean": WeightedMetric.from_parts(torch.where(mask, values, zero).sum(), count),
    }
    return total / max(inputs.normalizers.num_tokens, 1.0), metrics


@LOSSES.register("value")
def value_loss(config: ValueLossConfig | None = None) -> Loss:
    """The critic's loss; the batch brings ``returns`` and ``old_values`` (the critic's values
    when the experience was made). The engine must be built with ``output="values"``."""
    config = config or ValueLossConfig()
    return Loss(lambda inputs: clipped_value_loss(config, inputs), VALUE_METRICS,
                required_keys=("returns", "old_values"), output="values")
