"""Measured peak memory of one actor engine on CPU (profiler allocation events), for the plan check."""
from __future__ import annotations

import torch


def measured_update_peak(rank, world_size, model: dict, seq: int, micro_batch: int, n_rows: int, recompute: bool):
    """Peak bytes allocated from before the engine is built to after one update (one rank, TP1)."""
    from torch.profiler import ProfilerActivity, profile

    from mindspeed_rl.algorithms import PolicyLossConfig
    from mindspeed_rl.engine import EngineConfig, MegatronEngine
    from mindspeed_rl.platform import current_platform

    current_platform().apply_megatron_adaptor()
    g = torch.Generator().manual_seed(0)
    r = seq // 2
    batch = {"input_ids": torch.randint(2, model["vocab_size"], (n_rows, seq), generator=g),
             "attention_mask": torch.ones(n_rows, seq, dtype=torch.long),
             "response_mask": torch.ones(n_rows, r, dtype=torch.long), "advantages": torch.randn(n_rows, r, generator=g)}
    cfg = EngineConfig(micro_batch_size=micro_batch, params_dtype="fp32", use_distributed_optimizer=False,
                       recompute_activations=recompute, make_vocab_size_divisible_by=128)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        engine = MegatronEngine(model, cfg)
        engine.update(batch, PolicyLossConfig(use_kl_loss=False, entropy_coeff=0.0))
    events = sorted((e for e in prof.events() if e.name == "[memory]"), key=lambda e: e.time_range.start)
    live = peak = 0
    for e in events:
        live += e.cpu_memory_usage
        peak = max(peak, live)
    del engine
    return peak
