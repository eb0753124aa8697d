"""RL algorithm math, pure torch: advantages, policy losses, KL estimators, entropy, loss aggregation,
and the losses a training engine minimises.

No state, no Megatron or Ray. Everything a run selects by name is in a registry
(``registry.py``): ``rl_config.advantage_estimator`` (ADVANTAGE_ESTIMATORS),
``rl_config.policy_loss`` (POLICY_LOSSES), ``rl_config.kl_estimator`` (KL_ESTIMATORS), and the
engine-level losses (``losses.LOSSES``: grpo, sft). A new one is one decorated function.

Trainer (whole batch, single controller)::

    rewards, _ = apply_kl_in_reward(scores, old_logp, ref_logp, mask, rl.kl_coef, rl.kl_estimator)  # optional
    adv = compute_advantages(rl.advantage_estimator, rewards, mask, prompt_uids, epsilon=rl.norm_adv_eps)

Worker -> engine (the engine owns mini/micro-batching and the global normalisers)::

    loss = grpo_loss(policy_loss_config(rl))          # algorithms.losses.Loss
    metrics = engine.train_batch(local_rows, loss, num_mini_batches=2)

Per micro-batch the loss gets ``LossInputs`` (log-probs with grad, entropy, the rows, the global
``LossNormalizers``) and returns its share of the mini-batch loss plus ``WeightedMetric``s.
"""
from .advantages import compute_advantages, dr_grpo_advantages, group_ids, grpo_advantages, rloo_advantages
from .aggregation import AGG_MODES, LossNormalizers, aggregate_loss, aggregate_parts, compute_loss_normalizers
from .config import LossConfigError, PolicyLossConfig, field_help
from .grpo_loss import compute_grpo_loss
from .kl import apply_kl_in_reward, kl_penalty, scores_to_token_rewards
from .logits import entropy_from_logits, logprobs_from_logits
from .losses import (LOSSES, Loss, LossInputs, SFTLossConfig, build_loss, grpo_loss, grpo_policy_loss,
                     sft_cross_entropy, sft_loss)
from .metrics import (WeightedMetric, finalize_metric_sums, metric_sums, pack_metric_sums, reduce_metrics,
                      unpack_metric_sums)
from .policy_loss import PolicyLossOutput, compute_policy_loss
from .registry import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, POLICY_LOSSES, Registry
from .gae import compute_gae, gae_advantages, whiten  # registers "gae"
from .value_loss import ValueLossConfig, value_loss  # registers the "value" loss

__all__ = [
    "ADVANTAGE_ESTIMATORS", "AGG_MODES", "KL_ESTIMATORS", "LOSSES", "Loss", "LossConfigError", "LossInputs",
    "LossNormalizers", "POLICY_LOSSES", "build_loss", "grpo_loss", "grpo_policy_loss", "sft_cross_entropy", "sft_loss", "SFTLossConfig",
    "PolicyLossConfig", "PolicyLossOutput", "Registry", "WeightedMetric", "aggregate_loss", "aggregate_parts",
    "apply_kl_in_reward", "compute_advantages", "compute_grpo_loss", "compute_loss_normalizers",
    "compute_policy_loss", "dr_grpo_advantages", "entropy_from_logits", "field_help", "finalize_metric_sums",
    "group_ids", "grpo_advantages", "kl_penalty", "logprobs_from_logits", "metric_sums", "pack_metric_sums",
    "reduce_metrics", "rloo_advantages", "scores_to_token_rewards", "unpack_metric_sums",
    "compute_gae", "gae_advantages", "whiten", "ValueLossConfig", "value_loss",
]
