"""Rank functions of the critic engine tests (module level so that spawned ranks import them)."""
from __future__ import annotations

import torch

from mindspeed_rl.algorithms import ValueLossConfig, value_loss
from tests.engine import engine_ranks
from tests.engine.engine_worlds import _all_rows, _noisy, micro_batching

RETURNS_SEED = 23


def full_returns(mask: torch.Tensor) -> torch.Tensor:
    """Fixed regression targets for the full batch (the same whatever the layout)."""
    g = torch.Generator().manual_seed(RETURNS_SEED)
    return torch.randn(mask.shape, generator=g) * mask


def critic_world(rank, world_size, hf_dir, mg_dir, tp, pp, specs):
    """Values of the loaded critic (backbone from the policy checkpoint, seeded head), then one
    value-loss update (2 mini-batches, old values = values + noise so the clip is active) per
    micro-batching spec; returns the full-batch values before and after each update."""
    from mindspeed_rl.engine import MegatronEngine
    from mindspeed_rl.engine.batch import dp_shard_indices, select_rows

    batch = engine_ranks.make_batch(engine_ranks.model_config()["vocab_size"])
    frozen = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp, output="values", forward_only=True), load=mg_dir)
    rows = dp_shard_indices(engine_ranks.N_SAMPLES, frozen.dp_size, frozen.dp_rank, 2)
    local = {k: v for k, v in select_rows(batch, rows).items() if k in ("input_ids", "attention_mask", "response_mask")}
    values = frozen.infer_batch(local)["values"]
    mask = local["response_mask"]
    local["old_values"] = _noisy(values, mask, rows, 31, 0.3)
    local["returns"] = full_returns(batch["response_mask"])[rows]
    result = {"values": _all_rows(values, frozen), "updates": {}}
    loss = value_loss(ValueLossConfig(cliprange_value=0.2))
    for spec in specs:
        critic = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp, output="values", **micro_batching(spec)),
                                load=mg_dir)
        metrics = critic.train_batch(local, loss, num_mini_batches=2)
        after = critic.infer_batch(local)["values"]
        result["updates"][spec] = {"metrics": metrics, "values_after": _all_rows(after, critic)}
    return result if rank == 0 else None


def critic_checkpoint_world(rank, world_size, hf_dir, mg_dir, ckpt_dir):
    """Save a critic after one update, load into a fresh one: the second update is identical."""
    from mindspeed_rl.engine import MegatronEngine

    batch = engine_ranks.make_batch(engine_ranks.model_config()["vocab_size"])
    batch = {k: batch[k] for k in ("input_ids", "attention_mask", "response_mask")}
    batch["old_values"] = torch.zeros(batch["response_mask"].shape)
    batch["returns"] = full_returns(batch["response_mask"])
    loss = value_loss(ValueLossConfig(cliprange_value=0.2))
    cfg = engine_ranks.engine_config(1, 1, output="values")
    plain = MegatronEngine(hf_dir, cfg, load=mg_dir)
    plain.train_batch(batch, loss)
    plain.save_checkpoint(ckpt_dir)
    second = plain.train_batch(batch, loss)
    resumed = MegatronEngine(hf_dir, cfg, load=mg_dir)
    resumed.load_checkpoint(ckpt_dir)
    again = resumed.train_batch(batch, loss)
    return {"second": second, "again": again, "plain": plain.infer_batch(batch)["values"],
            "resumed": resumed.infer_batch(batch)["values"]}
