"""Measured peak memory of one actor engine on CPU (peak resident set over the baseline), for the plan check."""
from __future__ import annotations

import torch

from mindspeed_rl.algorithms import grpo_loss


def measured_update_peak(rank, world_size, model: dict, seq: int, micro_batch: int, n_rows: int, recompute: bool):
    """Peak resident bytes over the process's baseline, from before the engine is built to after
    one update (one rank, TP1; the rank is a fresh process, so its peak is this run's)."""
    import resource

    import psutil

    from mindspeed_rl.algorithms import PolicyLossConfig
    from mindspeed_rl.engine import MegatronEngine, MegatronEngineConfig
    from mindspeed_rl.platform import current_platform

    current_platform().apply_megatron_adaptor()
    g = torch.Generator().manual_seed(0)
    r = seq // 2
    batch = {"input_ids": torch.randint(2, model["vocab_size"], (n_rows, seq), generator=g),
             "attention_mask": torch.ones(n_rows, seq, dtype=torch.long),
             "response_mask": torch.ones(n_rows, r, dtype=torch.long), "advantages": torch.randn(n_rows, r, generator=g)}
    cfg = MegatronEngineConfig(micro_batch_size=micro_batch, params_dtype="fp32", use_distributed_optimizer=False,
                               recompute_activations=recompute, make_vocab_size_divisible_by=128)
    base = psutil.Process().memory_info().rss
    engine = MegatronEngine(model, cfg)
    engine.train_batch(batch, grpo_loss(PolicyLossConfig(use_kl_loss=False, entropy_coeff=0.0)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del engine
    return peak - base


def main() -> None:
    """``python tools/planning/measure_engine_memory.py``: the tiny shape of grpo_tiny_cpu (seq 256,
    micro-batch 16), measured vs the --dry-run plan's update phase (actor only)."""
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from mindspeed_rl.config import load_config
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config
    from mindspeed_rl.planning import plan_memory
    from mindspeed_rl.testing.distributed import run_distributed

    model = tiny_qwen2_config(num_hidden_layers=2, hidden_size=128, intermediate_size=256, vocab_size=512,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                              tie_word_embeddings=True)
    measured = run_distributed(measured_update_peak, 1, model, 256, 16, 16, False, timeout=900)[0]
    cfg = load_config("grpo_tiny_cpu", ["megatron_training.seq_length=256", "actor_config.micro_batch_size=16"])
    update = next(p for p in plan_memory(cfg).phases if p.name == "update")
    predicted = update.total - update.parts["reference params"]
    print(f"measured {measured / 1e6:.1f} MB, planned {predicted / 1e6:.1f} MB ({100 * (predicted / measured - 1):+.0f}%)")


if __name__ == "__main__":
    main()
