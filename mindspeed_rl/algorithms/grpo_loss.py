"""The actor's GRPO loss for one micro-batch: policy loss + KL loss - entropy bonus, with metrics."""
from __future__ import annotations

from typing import Dict, Optional

import torch

from .aggregation import LossNormalizers, aggregate_parts, compute_loss_normalizers
from .config import PolicyLossConfig
from .kl import kl_penalty
from .metrics import WeightedMetric
from .policy_loss import compute_policy_loss


def _zero_padding(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Half-precision inputs are upcast: ratios and clip decisions in bf16 would be visibly wrong.
    if values.dtype in (torch.float16, torch.bfloat16):
        values = values.float()
    return torch.where(mask, values, values.new_zeros(()))


def compute_grpo_loss(
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    config: PolicyLossConfig,
    *,
    old_log_prob: Optional[torch.Tensor] = None,
    ref_log_prob: Optional[torch.Tensor] = None,
    entropy: Optional[torch.Tensor] = None,
    normalizers: Optional[LossNormalizers] = None,
    loss_scale: float = 1.0,
) -> tuple[torch.Tensor, Dict[str, WeightedMetric]]:
    """This micro-batch's share of the global mini-batch loss, and its metrics.

    Args (all ``[batch, response_len]`` tensors, right-padded, aligned with ``response_mask``):
        log_prob: current policy log-probs of the response tokens (with grad).
        advantages: per-token advantages (e.g. ``grpo_advantages``).
        response_mask: 1 on valid response tokens.
        config: ``actor_config`` loss knobs.
        old_log_prob: log-probs of the policy that sampled the data; None means on-policy
            (``log_prob.detach()``, so the ratio is exactly 1 with the right gradient).
        ref_log_prob: reference log-probs; required when ``config.use_kl_loss``.
        entropy: per-token entropy of the current policy (with grad), needed when
            ``config.entropy_coeff != 0``; reported as a metric whenever given.
        normalizers: global denominators from ``compute_loss_normalizers`` over the whole
            mini-batch (all micro-batches, all DP ranks). None = this micro-batch is the whole batch.
        loss_scale: multiplies the returned loss (not the metrics): ``dp_size`` when the DP
            gradient reduction averages instead of summing, see ``aggregation``.

    Returns ``(loss, metrics)``. Summing ``loss`` over all micro-batches of all DP ranks gives the
    global-batch loss exactly. ``metrics`` maps pg_loss, pg_clipfrac, pg_clipfrac_lower, ppo_kl,
    and kl_loss / entropy when computed, to ``WeightedMetric``s (reduce with ``reduce_metrics``);
    pg_loss, kl_loss and entropy are in the configured aggregation mode, the others token means.
    """
    if log_prob.shape != response_mask.shape or advantages.shape != response_mask.shape:
        raise ValueError(f"log_prob {tuple(log_prob.shape)}, advantages {tuple(advantages.shape)} and "
                         f"response_mask {tuple(response_mask.shape)} must have the same shape")
    if normalizers is None:
        normalizers = compute_loss_normalizers(response_mask, config.loss_norm_length)
    mode = config.loss_agg_mode
    global_den = max(normalizers.denominator(mode), 1.0)
    mask = response_mask.bool()

    # Zero every input on padding first: a NaN/inf there (garbage log-probs of pad tokens) would
    # otherwise turn into 0 * NaN = NaN in the backward pass and poison grad_norm.
    log_prob, advantages = _zero_padding(log_prob, mask), _zero_padding(advantages, mask)
    old_log_prob = log_prob.detach() if old_log_prob is None else _zero_padding(old_log_prob, mask)
    ref_log_prob = None if ref_log_prob is None else _zero_padding(ref_log_prob, mask)
    entropy = None if entropy is None else _zero_padding(entropy, mask)
    pg = compute_policy_loss(config.policy_loss, log_prob, old_log_prob, advantages, mask, config)

    def agg(values: torch.Tensor, name: str) -> torch.Tensor:
        num, den = aggregate_parts(values, mask, mode, normalizers.norm_length)
        metrics[name] = WeightedMetric.from_parts(num, den)
        return num / global_den

    def token_mean(values: torch.Tensor, name: str) -> None:
        values = values.detach().to(torch.float64)
        values = torch.where(mask, values, values.new_zeros(()))
        metrics[name] = WeightedMetric.from_parts(values.sum(), mask.sum())

    metrics: Dict[str, WeightedMetric] = {}
    loss = agg(pg.loss, "pg_loss")
    token_mean(pg.clipped, "pg_clipfrac")
    token_mean(pg.clipped_lower, "pg_clipfrac_lower")
    token_mean(-pg.log_ratio, "ppo_kl")

    if config.use_kl_loss:
        if ref_log_prob is None:
            raise ValueError("use_kl_loss is true (rl_config.use_kl_in_reward=false) but no ref_log_prob was given; "
                             "compute reference log-probs or set use_kl_loss=false")
        kl = kl_penalty(log_prob, ref_log_prob, config.kl_loss_type)
        loss = loss + config.kl_loss_coef * agg(kl, "kl_loss")

    if entropy is not None:
        entropy_share = agg(entropy, "entropy")
        if config.entropy_coeff != 0:
            loss = loss - config.entropy_coeff * entropy_share
    elif config.entropy_coeff != 0:
        raise ValueError(f"entropy_coeff={config.entropy_coeff} (rl_config.entropy_coeff) needs per-token entropy; "
                         "pass entropy= (entropy_from_logits) or set entropy_coeff=0")

    return loss * loss_scale, metrics
