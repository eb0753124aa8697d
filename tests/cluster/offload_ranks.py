"""Rank function of the memory-at-sync test (module level: ranks are spawned)."""
from __future__ import annotations

import torch

from mindspeed_rl.algorithms import grpo_loss


def _batch():
    g = torch.Generator().manual_seed(4)
    n, s, r = 4, 12, 5
    return {"input_ids": torch.randint(2, 200, (n, s), generator=g), "attention_mask": torch.ones(n, s, dtype=torch.long),
            "response_mask": torch.ones(n, r, dtype=torch.long), "advantages": torch.randn(n, r, generator=g)}


class RecordingRollout:
    """Rollout stand-in that records, when weights arrive, how much of the actor's grad and
    optimizer storage is still resident."""

    def __init__(self, actor):
        self.actor, self.resident_at_load = actor, None

    def wake_up(self, tags=None):
        pass

    def update_weights(self, weights):
        for _ in weights:
            pass
        grads = self.actor._tensors_of("grads")
        states = self.actor._tensors_of("optimizer")
        self.resident_at_load = sum(t.untyped_storage().nbytes() for t in grads + states)


def sync_with_state_parked(rank, world_size):
    from mindspeed_rl.algorithms import PolicyLossConfig
    from mindspeed_rl.config import load_config
    from mindspeed_rl.engine import MegatronEngine, MegatronEngineConfig
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config
    from mindspeed_rl.workers.actor_worker import ActorRolloutWorker

    cfg = MegatronEngineConfig(micro_batch_size=2, params_dtype="bf16", lr=1e-3, use_distributed_optimizer=False)
    loss = PolicyLossConfig(use_kl_loss=False)
    hf = tiny_qwen2_config(num_hidden_layers=2)
    actor, twin = MegatronEngine(hf, cfg), MegatronEngine(hf, cfg)
    for e in (actor, twin):
        e.train_batch(_batch(), grpo_loss(loss))
    grads_bytes = sum(t.untyped_storage().nbytes() for t in actor._tensors_of("grads"))

    worker = ActorRolloutWorker.__new__(ActorRolloutWorker)
    worker.cfg = load_config("grpo_tiny_cpu", ["actor_config.offload_grads=true", "actor_config.offload_optimizer=true"])
    worker.actor, worker.rollout = actor, RecordingRollout(actor)
    worker.sync_weights()
    host = {k: p.host_bytes() for k, p in actor._parked.items()}
    actor.onload()
    grads_zero = all(bool((t == 0).all()) for t in actor._tensors_of("grads"))
    for e in (actor, twin):
        e.train_batch(_batch(), grpo_loss(loss))
    same = all(torch.equal(a, b) for (_, a), (_, b) in zip(actor.export_hf_weights(), twin.export_hf_weights()))
    return {"resident_at_load": worker.rollout.resident_at_load, "grads_bytes": grads_bytes, "host": host,
            "grads_zero_after_onload": grads_zero, "update_identical": same}
