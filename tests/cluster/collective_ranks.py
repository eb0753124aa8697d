"""Rank function of the strict-collectives simulation (module level: ranks are spawned)."""
from __future__ import annotations

import torch

from mindspeed_rl.algorithms import grpo_loss


def engine_under_strict_collectives(rank, world_size, cluster_platform, tp, pp, save_dir):
    """Build an actor, compute log-probs, update, save, load and export HF weights (weight sync)
    while every collective is checked against the backends ``cluster_platform`` gives its groups."""
    from mindspeed_rl.algorithms import PolicyLossConfig
    from mindspeed_rl.engine import MegatronEngine, MegatronEngineConfig
    from mindspeed_rl.engine.collectives import strict_collectives
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config
    from mindspeed_rl.platform.detect import PLATFORMS

    g = torch.Generator().manual_seed(3)
    n, s, r = 4, 12, 5
    batch = {"input_ids": torch.randint(2, 200, (n, s), generator=g), "attention_mask": torch.ones(n, s, dtype=torch.long),
             "response_mask": torch.ones(n, r, dtype=torch.long), "advantages": torch.randn(n, r, generator=g)}
    cfg = MegatronEngineConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, micro_batch_size=2,
                               params_dtype="fp32", lr=1e-3, use_distributed_optimizer=True)
    with strict_collectives(PLATFORMS[cluster_platform].backend_spec) as state:
        actor = MegatronEngine(tiny_qwen2_config(num_hidden_layers=2), cfg)
        actor.infer_batch(batch)
        actor.train_batch(batch, grpo_loss(PolicyLossConfig(use_kl_loss=False)))
        actor.save_checkpoint(save_dir)
        actor.load_checkpoint(save_dir)
        sum(t.numel() for _, t in actor.export_hf_weights())
    return dict(state.calls)
