"""KL estimators between the policy and the reference, per token, with samples drawn from the policy.

All estimators estimate ``KL(pi || pi_ref)`` (Schulman, "Approximating KL divergence"), with
``log_prob`` = log pi(token) and ``ref_log_prob`` = log pi_ref(token) of tokens sampled from pi:

* k1 (``kl``): ``log pi - log pi_ref``; unbiased, high variance, can be negative.
* abs: ``|log pi - log pi_ref|``.
* k2 (``mse``): ``0.5 (log pi - log pi_ref)^2``; biased, low variance, >= 0.
* k3 (``low_var_kl``): ``r - log r - 1`` with ``r = pi_ref / pi``; unbiased, >= 0 (the GRPO paper's
  KL term). The log-ratio is clamped to [-20, 20] and the result to [-10, 10] so one wild token
  cannot blow up the loss.
"""
from __future__ import annotations

import torch

from .registry import KL_ESTIMATORS

K3_LOG_RATIO_CLAMP = 20.0
K3_VALUE_CLAMP = 10.0


@KL_ESTIMATORS.register("k1", "kl")
def kl_k1(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    return log_prob - ref_log_prob


@KL_ESTIMATORS.register("abs")
def kl_abs(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    return (log_prob - ref_log_prob).abs()


@KL_ESTIMATORS.register("k2", "mse")
def kl_k2(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    return 0.5 * (log_prob - ref_log_prob).square()


@KL_ESTIMATORS.register("k3", "low_var_kl")
def kl_k3(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    log_ratio = (ref_log_prob - log_prob).clamp(-K3_LOG_RATIO_CLAMP, K3_LOG_RATIO_CLAMP)
    return (log_ratio.exp() - log_ratio - 1).clamp(-K3_VALUE_CLAMP, K3_VALUE_CLAMP)


def kl_penalty(log_prob: torch.Tensor, ref_log_prob: torch.Tensor, estimator: str = "low_var_kl") -> torch.Tensor:
    """Per-token KL estimate ``[batch, response_len]`` with the registered ``estimator``."""
    if log_prob.shape != ref_log_prob.shape:
        raise ValueError(f"log_prob {tuple(log_prob.shape)} and ref_log_prob {tuple(ref_log_prob.shape)} differ")
    return KL_ESTIMATORS.get(estimator)(log_prob, ref_log_prob)


def scores_to_token_rewards(scores: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Place each sequence score on its last valid response token (zeros elsewhere and on empty rows)."""
    if scores.dim() != 1 or scores.shape[0] != response_mask.shape[0]:
        raise ValueError(f"scores {tuple(scores.shape)} do not match response_mask {tuple(response_mask.shape)}")
    m = response_mask.bool()
    width = m.shape[-1]
    positions = torch.arange(width, device=m.device).expand_as(m)
    last = torch.where(m, positions, torch.full_like(positions, -1)).amax(dim=-1)
    rewards = torch.zeros(m.shape, dtype=scores.dtype if scores.is_floating_point() else torch.float32, device=m.device)
    rows = torch.nonzero(last >= 0).squeeze(-1)
    rewards[rows, last[rows]] = scores[rows].to(rewards.dtype)
    return rewards


def apply_kl_in_reward(token_level_scores: torch.Tensor, log_prob: torch.Tensor, ref_log_prob: torch.Tensor,
                       response_mask: torch.Tensor, kl_coef: float, estimator: str = "k1"):
    """Per-token reward penalty: ``rewards = scores - kl_coef * KL_t`` on valid tokens.

    ``token_level_scores`` is ``[batch, response_len]`` (see ``scores_to_token_rewards``) or
    ``[batch]`` (placed on the last valid token). ``log_prob`` is the rollout/old policy's log-prob;
    no gradient flows through the penalty. Returns ``(token_level_rewards, metrics)`` with the
    token-mean KL as ``kl_in_reward`` (a ``WeightedMetric``) and the coefficient as ``kl_coef``.
    """
    from .metrics import WeightedMetric

    if token_level_scores.dim() == 1:
        token_level_scores = scores_to_token_rewards(token_level_scores, response_mask)
    m = response_mask.bool()
    kl = kl_penalty(log_prob.detach(), ref_log_prob.detach(), estimator)
    kl = torch.where(m, kl, torch.zeros_like(kl))
    rewards = token_level_scores - kl_coef * kl.to(token_level_scores.dtype)
    metrics = {
        "kl_in_reward": WeightedMetric.from_parts(kl.sum(), m.sum()),
        "kl_coef": WeightedMetric.from_parts(torch.tensor(float(kl_coef)), torch.tensor(1.0)),
    }
    return rewards, metrics
