"""Per-token policy-gradient losses: PPO/GRPO clip, clip-higher (DAPO), dual clip, and GSPO.

A registered policy loss maps ``(log_prob, old_log_prob, advantages, response_mask, config)`` to a
``PolicyLossOutput`` of per-token tensors; aggregation over tokens/sequences and over the global
batch happens in ``aggregation`` so that every loss gets every aggregation mode.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .registry import POLICY_LOSSES

# exp() of a log-ratio beyond this is inf/0 in fp32; no realistic policy step gets near it.
LOG_RATIO_CLAMP = 20.0


@dataclass
class PolicyLossOutput:
    loss: torch.Tensor  # [batch, response_len] per-token loss (before aggregation)
    clipped: torch.Tensor  # [batch, response_len] bool: the clipped objective was the active one
    clipped_lower: torch.Tensor  # [batch, response_len] bool: the dual clip (A < 0) was active
    log_ratio: torch.Tensor  # [batch, response_len] log pi/pi_old used for the ratio (detached)


def _clip_bounds(config) -> tuple[float, float]:
    low = config.clip_ratio if config.clip_ratio_low is None else config.clip_ratio_low
    high = config.clip_ratio if config.clip_ratio_high is None else config.clip_ratio_high
    return low, high


def _clipped_objective(ratio: torch.Tensor, advantages: torch.Tensor, low: float, high: float,
                       clip_ratio_c) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``max(-A r, -A clip(r, 1-low, 1+high))``, then for A < 0 ``min(that, -A c)`` (dual clip)."""
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - low, 1.0 + high)
    loss = torch.maximum(unclipped, clipped)
    clip_active = clipped > unclipped
    if clip_ratio_c is None:
        return loss, clip_active, torch.zeros_like(clip_active)
    lower_bound = -advantages * clip_ratio_c
    lower_active = (loss > lower_bound) & (advantages < 0)
    loss = torch.where(advantages < 0, torch.minimum(loss, lower_bound), loss)
    return loss, clip_active, lower_active


@POLICY_LOSSES.register("vanilla", "clip")
def clip_policy_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                     response_mask: torch.Tensor, config) -> PolicyLossOutput:
    """Token-level PPO/GRPO clipped surrogate.

    ``r_t = pi(t) / pi_old(t)``; loss ``max(-A r, -A clip(r, 1 - clip_ratio_low, 1 + clip_ratio_high))``
    (clip-higher when low != high, DAPO); with ``clip_ratio_c`` set, tokens with ``A < 0`` are
    further bounded by ``-A clip_ratio_c`` (dual clip, Ye et al. 2020).
    """
    low, high = _clip_bounds(config)
    log_ratio = (log_prob - old_log_prob).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = log_ratio.exp()
    loss, clipped, lower = _clipped_objective(ratio, advantages, low, high, config.clip_ratio_c)
    return PolicyLossOutput(loss, clipped, lower, log_ratio.detach())


@POLICY_LOSSES.register("gspo")
def gspo_policy_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                     response_mask: torch.Tensor, config) -> PolicyLossOutput:
    """GSPO (Zheng et al. 2025): sequence-level ratio ``exp(mean_t log r_t)`` shared by all tokens.

    Per token ``s_t = sg(s) * pi(t) / sg(pi(t))`` so the value is the sequence ratio and the
    gradient is the token's; then the same clipped surrogate (GSPO uses tiny clip ranges, e.g.
    3e-4 / 4e-4, and ``seq-mean-token-mean`` aggregation).
    """
    low, high = _clip_bounds(config)
    m = response_mask.bool()
    token_log_ratio = torch.where(m, log_prob - old_log_prob, torch.zeros_like(log_prob))
    seq_log_ratio = token_log_ratio.sum(-1) / m.sum(-1).clamp(min=1)
    log_ratio = seq_log_ratio.detach().unsqueeze(-1) + log_prob - log_prob.detach()
    log_ratio = log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    loss, clipped, lower = _clipped_objective(log_ratio.exp(), advantages, low, high, config.clip_ratio_c)
    return PolicyLossOutput(loss, clipped, lower, token_log_ratio.detach())


def compute_policy_loss(name: str, log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                        response_mask: torch.Tensor, config) -> PolicyLossOutput:
    """Run the registered policy loss ``name`` (config ``rl_config.policy_loss``)."""
    return POLICY_LOSSES.get(name)(log_prob, old_log_prob, advantages, response_mask, config)
