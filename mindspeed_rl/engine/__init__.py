"""Megatron training engine (actor and reference); rollout engines live in ``engine.rollout``.

``import mindspeed_rl.engine`` is light: megatron-core is imported when an engine is built.

One ``MegatronEngine`` per rank, inside an initialised torch.distributed world (the platform's
backend; ``current_platform().init_process_group(rank, world)``). The engine initialises
megatron's parallel state for its TP/PP (DP = world / (TP*PP)), seeds, builds the GPTModel from
the ``models`` bridge (local spec on CPU, Transformer Engine spec when TE is importable on GPU),
loads a converted checkpoint, and (actor) wraps it in Megatron DDP with the Megatron optimizer
(Adam, grad clipping, bf16/fp32, optional distributed optimizer) and lr scheduler::

    from mindspeed_rl.engine import EngineConfig, MegatronEngine, policy_loss_config_from_rl

    cfg = EngineConfig.from_worker_config(run.actor_config, seed=run.megatron_training.seed,
                                          total_steps=iters * mini_batches * epochs)
    actor = MegatronEngine(hf_config_dir, cfg, load=run.actor_config.load)
    ref = MegatronEngine(hf_config_dir, EngineConfig.from_worker_config(run.ref_config, forward_only=True),
                         load=run.ref_config.load)             # same TP/PP if in the same process

Batch (dict of tensors, this DP rank's rows; see ``engine.batch``): ``input_ids [B,S]`` prompt
then response, right-padded; ``attention_mask [B,S]``; ``response_mask [B,R]``; for ``update``
also ``advantages [B,R]`` and optionally ``old_log_probs``/``ref_log_probs [B,R]``. All ranks of
one model-parallel (TP x PP) group must pass the same batch; each DP rank passes its own shard
(``batch.dp_shard_indices`` gives the shard that keeps global mini-batches intact).

Calls (collective: every rank of the engine's world calls them together):

* ``compute_log_probs(batch, with_entropy=False) -> {'log_probs': [B,R], 'entropy'?}``: forward
  only, micro-batches through megatron's pipeline schedule, vocab-parallel log-softmax (the full
  vocab is never gathered). float32, 0 on masked positions, returned on every rank of the
  model-parallel group (the trainer reads it from any one rank per DP rank, e.g. TP 0 / last PP).
* ``update(batch, loss_config, num_mini_batches=1, epochs=1, shuffle=False) -> metrics``: GRPO
  update with ``algorithms.compute_grpo_loss`` (``loss_config`` is an
  ``algorithms.PolicyLossConfig``; ``policy_loss_config_from_rl(rl_config)`` builds one). One
  optimizer step per mini-batch. The loss is normalised over the whole global mini-batch (counts
  all-reduced over DP) and the schedule's 1/num_microbatches and DDP's 1/dp averaging are undone,
  so the update does not depend on micro-batch size, number of micro-batches or DP size. One
  mini-batch and one epoch is treated as exactly on-policy (ratio 1, ``old_log_probs`` unused).
  Metrics, identical on every rank: pg_loss, pg_clipfrac, pg_clipfrac_lower, ppo_kl, kl_loss,
  entropy (exact weighted means over all DP ranks), grad_norm (mean over steps), lr (of the last
  step), num_optimizer_steps.
* ``sft_step(batch) -> {'sft_loss', 'grad_norm', 'lr'}``: one step of masked token-mean NLL over
  the response tokens of the global batch (warm start).
* ``offload(params=True, grads=True, optimizer=True)`` / ``onload()``: park state in host memory
  while a colocated rollout engine runs; training afterwards is bit-identical.
* ``save_checkpoint(dir, iteration=None)`` / ``load_checkpoint(dir, iteration=None)``: model,
  optimizer, lr scheduler, RNG and step, written atomically (``engine.checkpoint``).
* ``export_hf_weights()``: iterator of (HF name, full tensor) on every rank, for weight sync.

The reference is the same class with ``EngineConfig(forward_only=True)``: no DDP, no optimizer;
``update``/``sft_step`` raise.
"""
from __future__ import annotations

from typing import Any

__all__ = ["EngineConfig", "MegatronEngine", "policy_loss_config_from_rl", "dp_shard_indices"]

_LAZY = {
    "EngineConfig": "mindspeed_rl.engine.config",
    "policy_loss_config_from_rl": "mindspeed_rl.engine.config",
    "MegatronEngine": "mindspeed_rl.engine.megatron_engine",
    "dp_shard_indices": "mindspeed_rl.engine.batch",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mindspeed_rl.engine' has no attribute {name!r}")
