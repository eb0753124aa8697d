"""Generalised advantage estimation (Schulman et al. 2016) for PPO with a critic.

Per response token ``t`` (the state is the prompt plus the tokens before ``t``)::

    delta_t = r_t + gamma * V_{t+1} - V_t          (V after the last token is 0: the episode ends)
    A_t     = delta_t + gamma * lam * A_{t+1}
    R_t     = A_t + V_t                            (the critic's regression target)

``r_t`` is the token-level reward: the sequence score on the last response token, minus the
optional KL-in-reward penalty on every token (``kl.scores_to_token_rewards`` /
``kl.apply_kl_in_reward``). Masked positions are skipped: they carry neither reward nor value,
and the recursion passes over them (so interior holes and right padding both work). With
gamma = lam = 1 (Open-Reasoner-Zero) ``A_t = score - V_t`` for every valid token.
"""
from __future__ import annotations

from typing import Tuple

import torch

from .advantages import GroupIndex
from .registry import ADVANTAGE_ESTIMATORS


def _check(token_rewards: torch.Tensor, values: torch.Tensor, response_mask: torch.Tensor, gamma: float, lam: float):
    if response_mask.dim() != 2:
        raise ValueError(f"response_mask must be [batch, response_len], got {tuple(response_mask.shape)}")
    for name, t in (("token_rewards", token_rewards), ("values", values)):
        if t.shape != response_mask.shape:
            raise ValueError(f"{name} {tuple(t.shape)} must match response_mask {tuple(response_mask.shape)}")
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"gamma={gamma} and lam={lam} must be in [0, 1] (rl_config.gamma / rl_config.lam)")


@torch.no_grad()
def compute_gae(token_rewards: torch.Tensor, values: torch.Tensor, response_mask: torch.Tensor,
                gamma: float = 1.0, lam: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(advantages, returns)``, both ``[batch, response_len]`` float32, zero where masked.

    Computed in float64 (a long response at gamma = lam = 1 sums thousands of deltas)."""
    _check(token_rewards, values, response_mask, gamma, lam)
    mask = response_mask.to(torch.float64)
    r = token_rewards.to(torch.float64) * mask
    v = values.to(torch.float64) * mask
    n, width = mask.shape
    adv = torch.zeros_like(r)
    next_value = torch.zeros(n, dtype=torch.float64, device=r.device)  # V of the next valid token
    next_adv = torch.zeros_like(next_value)  # A of the next valid token
    for t in range(width - 1, -1, -1):
        m = mask[:, t]
        delta = r[:, t] + gamma * next_value - v[:, t]
        a = delta + gamma * lam * next_adv
        adv[:, t] = a * m
        # a masked position leaves the recursion's state as it was
        next_value = torch.where(m > 0, v[:, t], next_value)
        next_adv = torch.where(m > 0, a, next_adv)
    returns = (adv + v) * mask
    return adv.float(), returns.float()


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the valid tokens of the whole batch (unbiased var, as
    verl's ``masked_whiten``); zero where masked."""
    m = mask.to(torch.float64)
    count = m.sum()
    if count < 2:  # no spread to normalise by
        return torch.zeros_like(x)
    xd = x.to(torch.float64)
    mean = (xd * m).sum() / count
    var = (((xd - mean) * m) ** 2).sum() / (count - 1)
    return (((xd - mean) * torch.rsqrt(var + eps)) * m).to(x.dtype)


@ADVANTAGE_ESTIMATORS.register("gae")
def gae_advantages(rewards: torch.Tensor, response_mask: torch.Tensor, group_index: GroupIndex, *,
                   epsilon: float = 1e-6, values: torch.Tensor | None = None, gamma: float = 1.0, lam: float = 1.0,
                   whiten_advantages: bool = True) -> torch.Tensor:
    """GAE through the estimator registry (``rl_config.advantage_estimator=gae``); needs the
    critic's ``values``. ``rewards``: ``[batch]`` scores or ``[batch, response_len]`` token rewards.
    The PPO trainer calls ``compute_gae`` itself, since it also needs the returns."""
    from .kl import scores_to_token_rewards

    if values is None:
        raise ValueError("advantage_estimator=gae needs the critic's values (a critic_config section in the run config)")
    if rewards.dim() == 1:
        rewards = scores_to_token_rewards(rewards, response_mask)
    adv, _ = compute_gae(rewards, values, response_mask, gamma, lam)
    return whiten(adv, response_mask) if whiten_advantages else adv
