"""The iteration's metrics also under the names MindSpeed-RL logs (``grpo_trainer_hybrid.py``,
``compute_grpo_data_metrics``, ``grpo_actor_loss_func.py``, ``utils.compute_tps``), so that its users'
dashboards and log parsers keep working. Our own names stay; these are added beside them."""
from __future__ import annotations

from dataclasses import dataclass

# ours -> MindSpeed-RL's (same value)
SAME_VALUE = {
    "reward/mean": "grpo/score/mean",
    "reward/max": "grpo/score/max",
    "reward/min": "grpo/score/min",
    "kl_loss": "actor/kl_loss",
    "entropy": "actor/entropy",
    "pg_clipfrac": "actor/pg_clipfrac",
    "ppo_kl": "actor/ppo_kl",
    "grad_norm": "actor/grad_norm",
    "lr": "actor/lr",
    "timing/reference": "timing/reference_model",
    "timing/reward": "timing/rule_reward",
    "timing/weight_sync": "timing/resharding_to_train",
}


@dataclass(frozen=True)
class ThroughputBasis:
    """What MindSpeed-RL's ``compute_tps`` divides by: prompts x samples per iteration, and the devices of
    the run (the actor's alone when the reference is colocated, its ``use_integrated_worker``)."""

    global_batch_size: int
    n_samples_per_prompt: int
    world_size: int

    @classmethod
    def from_config(cls, cfg) -> "ThroughputBasis":
        rl = cfg.rl_config
        world = rl.actor_resource.num_devices + (0 if rl.colocate_actor_ref else rl.reference_resource.num_devices)
        return cls(cfg.megatron_training.global_batch_size, rl.n_samples_per_prompt, world)


def mindspeed_rl_names(metrics: dict[str, float], basis: ThroughputBasis | None = None) -> dict[str, float]:
    """The MindSpeed-RL-named metrics derivable from ``metrics`` (ours are not repeated)."""
    out = {theirs: metrics[ours] for ours, theirs in SAME_VALUE.items() if ours in metrics}
    if "pg_loss" in metrics:
        out["actor/pg_loss"] = abs(metrics["pg_loss"])  # MindSpeed-RL logs the magnitude
    for key, value in metrics.items():  # reward/<fn>/mean -> <fn>_rewards/mean
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "reward" and parts[2] == "mean":
            out[f"{parts[1]}_rewards/mean"] = value
    lengths = ("response_length/mean", "prompt_length/mean")
    if basis is not None and all(k in metrics for k in lengths) and basis.world_size > 0:
        tokens_per_device = ((metrics[lengths[0]] + metrics[lengths[1]]) * basis.global_batch_size
                             * basis.n_samples_per_prompt / basis.world_size)
        for name, timing in (("e2e_tps", "timing/all"), ("update_tps", "timing/update"), ("vllm_tps", "timing/rollout")):
            if metrics.get(timing, 0) > 0:
                out[name] = tokens_per_device / metrics[timing]
    return out
