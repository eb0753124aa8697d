"""The PPO-with-a-critic part of an iteration (``rl_config.advantage_estimator=gae``,
Open-Reasoner-Zero style): values -> GAE -> the actor's update (skipped during the critic's
warm-up) and the critic's. The loop in ``grpo.py`` calls these; everything else is shared."""
from __future__ import annotations

from typing import Dict

import torch


def gae(rl, rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages, returns)``: token rewards (the score on the last token, KL-in-reward already
    subtracted when on), GAE with rl.gamma / rl.lam, advantages whitened when asked."""
    from mindspeed_rl.algorithms import compute_gae, scores_to_token_rewards, whiten

    if rewards.dim() == 1:
        rewards = scores_to_token_rewards(rewards, mask)
    advantages, returns = compute_gae(rewards, values, mask, rl.gamma, rl.lam)
    if rl.whiten_advantages:
        advantages = whiten(advantages, mask)
    return advantages, returns


def actor_trains(rl, iteration: int) -> bool:
    """The first ``rl.critic_warmup`` iterations train only the critic."""
    return iteration > rl.critic_warmup


def critic_batch(batch: dict, train_mask: torch.Tensor, values: torch.Tensor, returns: torch.Tensor) -> dict:
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "response_mask": train_mask,
            "returns": returns, "old_values": values}


def critic_num_mini_batches(cfg, num_prompts: int) -> int:
    mt = cfg.megatron_training
    mini = cfg.critic_config.mini_batch_size or mt.global_batch_size
    return min(max(mt.global_batch_size // mini, 1), num_prompts)


def critic_metrics(update: Dict[str, float], values: torch.Tensor, returns: torch.Tensor,
                   mask: torch.Tensor) -> Dict[str, float]:
    """The critic's update metrics and how well its values (before the update) explain the returns:
    ``explained_var = 1 - Var(R - V) / Var(R)`` over valid tokens (1: perfect, <= 0: no better than a constant)."""
    m = mask.bool()
    v, r = values[m].double(), returns[m].double()
    out = {f"critic/{k}": float(x) for k, x in update.items()}
    if r.numel() > 1:
        var_r = r.var()
        out["critic/explained_var"] = float(1 - (r - v).var() / var_r) if var_r > 0 else 0.0
        out["critic/values_mean"] = float(v.mean())
        out["critic/returns_mean"] = float(r.mean())
    return out
