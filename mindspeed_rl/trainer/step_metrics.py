"""The metrics of one GRPO iteration, from what the step produced (no worker calls here)."""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch

UPDATE_METRICS = ("pg_loss", "pg_clipfrac", "pg_clipfrac_lower", "ppo_kl", "kl_loss", "entropy", "grad_norm", "lr")


def reward_metrics(scores: torch.Tensor, per_function: Mapping[str, list], counters: Mapping[str, float]) -> Dict[str, float]:
    metrics = {"reward/mean": float(scores.mean()), "reward/max": float(scores.max()), "reward/min": float(scores.min())}
    for name, values in per_function.items():
        metrics[f"reward/{name}/mean"] = float(sum(values) / max(len(values), 1))
    metrics["reward/timeouts"] = float(counters.get("timeouts", 0))
    metrics["reward/extraction_failures"] = float(counters.get("extraction_failures", 0))
    return metrics


def advantage_metrics(advantages: torch.Tensor, mask: torch.Tensor, prompt_index) -> Dict[str, float]:
    from mindspeed_rl.trainer.dynamic_sampling import zero_advantage_group_fraction

    seq_adv = (advantages * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return {"advantages/mean": float(seq_adv.mean()), "advantages/max": float(seq_adv.max()),
            "advantages/min": float(seq_adv.min()),
            "advantages/zero_group_fraction": zero_advantage_group_fraction(advantages, mask, prompt_index)}


def step_metrics(*, scores: torch.Tensor, per_function: Mapping[str, list], reward_counters: Mapping[str, float],
                 advantages: torch.Tensor, exp, dynamic_sampling: Mapping[str, float], max_tokens: int,
                 old_log_probs: Optional[torch.Tensor], update: Mapping[str, float], times: Mapping[str, float],
                 elapsed: float, num_devices: int) -> Dict[str, float]:
    """Rewards, advantages, dynamic sampling, response lengths, rollout-vs-trainer log-prob
    drift, the update's loss metrics, timings and throughput of one iteration."""
    from mindspeed_rl.engine.rollout.metrics import logprob_diff
    from mindspeed_rl.trainer.experience import response_stats

    batch = exp.batch
    mask = batch["response_mask"]
    metrics = reward_metrics(scores, per_function, reward_counters)
    metrics.update(advantage_metrics(advantages, mask, exp.prompt_index))
    metrics.update(dynamic_sampling)
    metrics.update(response_stats(exp, max_tokens))
    if "rollout_log_probs" in batch and old_log_probs is not None:
        diff = logprob_diff(batch["rollout_log_probs"], old_log_probs, mask)
        metrics.update({k: float(v) for k, v in diff.items()})
    metrics.update({key: float(update[key]) for key in UPDATE_METRICS if key in update})
    metrics.update(times)
    metrics["timing/all"] = elapsed
    tokens = float(batch["attention_mask"].sum())
    metrics["tokens_per_second_per_device"] = tokens / elapsed / num_devices
    return metrics
