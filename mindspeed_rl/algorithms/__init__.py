"""GRPO algorithm math, pure torch: advantages, policy losses, KL estimators, entropy, loss aggregation.

No state, no Megatron or Ray: the engine calls ``compute_grpo_loss`` per micro-batch with global
normalisers from ``compute_loss_normalizers``; the trainer calls ``compute_advantages`` (and
``apply_kl_in_reward``) on the whole batch. Algorithms are selected by name from registries.

Trainer (whole batch, single controller)::

    rewards, _ = apply_kl_in_reward(scores, old_logp, ref_logp, mask, kl_coef, "k1")  # optional
    adv = compute_advantages(rl_cfg.adv_estimator, rewards, mask, prompt_uids, epsilon=rl_cfg.adv_epsilon)

Engine (per mini-batch, then per micro-batch on every DP rank)::

    norms = compute_loss_normalizers(mini_batch_mask, norm_length=cfg.loss_norm_length)  # global counts
    loss, metrics = compute_grpo_loss(logp, adv, mask, cfg, old_log_prob=old, ref_log_prob=ref,
                                      entropy=ent, normalizers=norms, loss_scale=dp_size_if_ddp_averages)
    loss.backward()                     # accumulate by SUM over micro-batches
    records.append(metrics)             # reduce_metrics(records) / pack_metric_sums for DP all-reduce

If each DP rank only sees its own shard, count locally and all-reduce:
``LossNormalizers.from_tensor(all_reduce(compute_loss_normalizers(local_mask).to_tensor()), L)``.
"""
from .advantages import compute_advantages, dr_grpo_advantages, group_ids, grpo_advantages, rloo_advantages
from .aggregation import AGG_MODES, LossNormalizers, aggregate_loss, aggregate_parts, compute_loss_normalizers
from .config import AlgorithmConfig, PolicyLossConfig, field_help
from .grpo_loss import compute_grpo_loss
from .kl import apply_kl_in_reward, kl_penalty, scores_to_token_rewards
from .logits import entropy_from_logits, logprobs_from_logits
from .metrics import (WeightedMetric, finalize_metric_sums, metric_sums, pack_metric_sums, reduce_metrics,
                      unpack_metric_sums)
from .policy_loss import PolicyLossOutput, compute_policy_loss
from .registry import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, POLICY_LOSSES, Registry

__all__ = [
    "ADVANTAGE_ESTIMATORS", "AGG_MODES", "AlgorithmConfig", "KL_ESTIMATORS", "LossNormalizers", "POLICY_LOSSES",
    "PolicyLossConfig", "PolicyLossOutput", "Registry", "WeightedMetric", "aggregate_loss", "aggregate_parts",
    "apply_kl_in_reward", "compute_advantages", "compute_grpo_loss", "compute_loss_normalizers",
    "compute_policy_loss", "dr_grpo_advantages", "entropy_from_logits", "field_help", "finalize_metric_sums",
    "group_ids", "grpo_advantages", "kl_penalty", "logprobs_from_logits", "metric_sums", "pack_metric_sums",
    "reduce_metrics", "rloo_advantages", "scores_to_token_rewards", "unpack_metric_sums",
]
