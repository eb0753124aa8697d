"""Rank functions of the engine acceptance tests (module level so that spawned ranks import them).

Each spawned world runs several checks to save process start-up time. Results come back from
global rank 0 (every rank holds the same exported weights and metrics)."""
from __future__ import annotations

import torch
import torch.distributed as dist

from mindspeed_rl.algorithms import grpo_loss, sft_loss
from tests.engine import engine_ranks

NOISE_SEED = 17


def _noisy(lp: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, seed: int, scale: float) -> torch.Tensor:
    """lp + fixed noise for the given rows of the full batch (same noise whatever the layout)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(engine_ranks.N_SAMPLES, mask.shape[1], generator=g)[rows]
    return (lp + scale * noise) * mask


def _all_rows(local: torch.Tensor, engine) -> torch.Tensor:
    """Reassemble the full batch from DP shards (every rank of a DP group holds the same rows)."""
    from mindspeed_rl.engine.batch import dp_shard_indices

    if engine.dp_size == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(engine.dp_size)]
    dist.all_gather(parts, local.contiguous(), group=engine.dp_group)
    full = torch.empty((engine_ranks.N_SAMPLES, *local.shape[1:]), dtype=local.dtype)
    for r, part in enumerate(parts):
        full[dp_shard_indices(engine_ranks.N_SAMPLES, engine.dp_size, r, 2)] = part
    return full


def grpo_inputs(ref, batch: dict, num_mini_batches: int = 2) -> tuple[dict, dict]:
    """This DP rank's rows with old/ref log-probs = current log-probs + fixed noise; and the ref outputs."""
    from mindspeed_rl.engine.batch import dp_shard_indices, select_rows

    rows = dp_shard_indices(engine_ranks.N_SAMPLES, ref.dp_size, ref.dp_rank, num_mini_batches)
    local = select_rows(batch, rows)
    out = ref.infer_batch(local, with_entropy=True)
    mask = local["response_mask"]
    local["old_log_probs"] = _noisy(out["log_probs"], mask, rows, NOISE_SEED, 0.3)
    local["ref_log_probs"] = _noisy(out["log_probs"], mask, rows, NOISE_SEED + 1, 0.3)
    return local, out


def micro_batching(spec) -> dict:
    """Engine settings for a micro-batching spec: an int is a fixed micro-batch size, ``"tokN"``
    a token budget of N padded tokens (dynamic batch size) for the update and log-prob passes."""
    if isinstance(spec, str) and spec.startswith("tok"):
        budget = int(spec[3:])
        return {"max_tokens_per_micro_batch": budget, "log_prob_max_tokens_per_micro_batch": budget}
    return {"micro_batch_size": spec}


def layout_world(rank, world_size, hf_dir, mg_dir, tp, pp, micro_batch_sizes, use_distributed_optimizer=False,
                 sequence_parallel=False):
    """Reference log-probs/entropy and HF export of the loaded weights, then one GRPO update
    (2 mini-batches) per micro-batching spec (``micro_batching``); returns the full-batch log-probs
    (also under each token budget) and the updated weights. ``sequence_parallel`` goes to every engine."""
    from mindspeed_rl.engine import MegatronEngine

    vocab = engine_ranks.model_config()["vocab_size"]
    batch = engine_ranks.make_batch(vocab)
    ref = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp, forward_only=True, sequence_parallel=sequence_parallel), load=mg_dir)
    local, out = grpo_inputs(ref, batch)
    result = {"log_probs": _all_rows(out["log_probs"], ref), "entropy": _all_rows(out["entropy"], ref),
              "loaded": engine_ranks.hf_weights(ref), "updates": {}, "budget_log_probs": {}}
    for spec in micro_batch_sizes:
        if isinstance(spec, str):
            budget_ref = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp, forward_only=True, sequence_parallel=sequence_parallel,
                                                                **micro_batching(spec)),
                                        load=mg_dir)
            lp = budget_ref.infer_batch({k: local[k] for k in ("input_ids", "attention_mask", "response_mask")},
                                              with_entropy=True)
            result["budget_log_probs"][spec] = {k: _all_rows(v, budget_ref) for k, v in lp.items()}
        actor = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp, use_distributed_optimizer=use_distributed_optimizer,
                                                        sequence_parallel=sequence_parallel, **micro_batching(spec)),
                               load=mg_dir)
        metrics = actor.train_batch(local, grpo_loss(engine_ranks.loss_config()), num_mini_batches=2)
        result["updates"][spec] = {"metrics": metrics, "weights": engine_ranks.hf_weights(actor)}
    return result if rank == 0 else None


def on_policy_and_sft_world(rank, world_size, hf_dir, mg_dir):
    """TP1: one mini-batch + one epoch (exactly on-policy) and one SFT step; returns metrics."""
    from mindspeed_rl.engine import MegatronEngine

    batch = engine_ranks.make_batch(engine_ranks.model_config()["vocab_size"])
    ref = MegatronEngine(hf_dir, engine_ranks.engine_config(1, 1, forward_only=True), load=mg_dir)
    local, _ = grpo_inputs(ref, batch, num_mini_batches=1)
    local["old_log_probs"] = local["old_log_probs"] - 0.5 * local["response_mask"]  # far off: must be unused
    actor = MegatronEngine(hf_dir, engine_ranks.engine_config(1, 1, clip_grad=0.0, micro_batch_size=3), load=mg_dir)
    grpo = actor.train_batch(local, grpo_loss(engine_ranks.loss_config()), num_mini_batches=1, epochs=1)
    grpo_grad_norm = _grad_norm(actor)
    sft_actor = MegatronEngine(hf_dir, engine_ranks.engine_config(1, 1, clip_grad=0.0, micro_batch_size=3), load=mg_dir)
    sft = sft_actor.train_batch(batch, sft_loss())
    return {"grpo": grpo, "grpo_grad_norm": grpo_grad_norm, "sft": sft, "sft_grad_norm": _grad_norm(sft_actor),
            "batch": local}


def _grad_norm(engine) -> float:
    """L2 norm of the DDP gradient buffers left by the last step (TP1/PP1/DP1 only)."""
    return float(torch.sqrt(sum((b.grad_data.double() ** 2).sum() for b in engine.model.buffers)))


def offload_checkpoint_world(rank, world_size, hf_dir, mg_dir, ckpt_dir):
    """DP2, distributed optimizer: offload+onload between two updates is bit-identical to not
    offloading; save after the first update, load into a fresh engine, second update identical."""
    from mindspeed_rl.engine import MegatronEngine

    batch = engine_ranks.make_batch(engine_ranks.model_config()["vocab_size"])
    ref = MegatronEngine(hf_dir, engine_ranks.engine_config(1, 1, forward_only=True), load=mg_dir)
    first, _ = grpo_inputs(ref, batch)
    second = dict(first, advantages=-first["advantages"])
    cfg = dict(use_distributed_optimizer=True, lr_decay_style="cosine", lr_decay_steps=10, lr_warmup_steps=1)
    loss = engine_ranks.loss_config()

    plain = MegatronEngine(hf_dir, engine_ranks.engine_config(1, 1, **cfg), load=mg_dir)
    plain.train_batch(first, grpo_loss(loss), num_mini_batches=2)
    plain.save_checkpoint(ckpt_dir)
    m_plain = plain.train_batch(second, grpo_loss(loss), num_mini_batches=2)
    w_plain = engine_ranks.hf_weights(plain)

    parked = MegatronEngine(hf_dir, engine_ranks.engine_config(1, 1, **cfg), load=mg_dir)
    parked.train_batch(first, grpo_loss(loss), num_mini_batches=2)
    moved = parked.offload()
    storage_sizes = [p.untyped_storage().nbytes() for p in parked.model.parameters()]
    parked.onload()
    m_parked = parked.train_batch(second, grpo_loss(loss), num_mini_batches=2)
    w_parked = engine_ranks.hf_weights(parked)

    resumed = MegatronEngine(hf_dir, engine_ranks.engine_config(1, 1, **cfg), load=mg_dir)
    it = resumed.load_checkpoint(ckpt_dir)
    step_after_load = resumed.step
    m_resumed = resumed.train_batch(second, grpo_loss(loss), num_mini_batches=2)
    w_resumed = engine_ranks.hf_weights(resumed)
    if rank != 0:
        return None
    return {"plain": (m_plain, w_plain), "parked": (m_parked, w_parked), "resumed": (m_resumed, w_resumed),
            "moved": moved, "max_storage_while_parked": max(storage_sizes), "iteration": it,
            "step_after_load": step_after_load}
