"""Megatron training engine (actor and reference); rollout engines live in ``engine.rollout``.

``import mindspeed_rl.engine`` is light: megatron-core is imported when an engine is built.

One ``MegatronEngine`` per rank, inside an initialised torch.distributed world (the platform's
backend; ``current_platform().init_process_group(rank, world)``). The engine initialises
megatron's parallel state for its TP/PP (DP = world / (TP*PP)), seeds, builds the GPTModel from
the ``models`` bridge (local spec on CPU, Transformer Engine spec when TE is importable on GPU),
loads a converted checkpoint, and (actor) wraps it in Megatron DDP with the Megatron optimizer
(Adam, grad clipping, bf16/fp32, optional distributed optimizer) and lr scheduler. Its settings
(``MegatronEngineConfig``) are built by the config room from the run config; the engine never
reads the run schema::

    from mindspeed_rl.algorithms.losses import grpo_loss
    from mindspeed_rl.config.components import megatron_engine_config, policy_loss_config

    actor = MegatronEngine(hf_config, megatron_engine_config(run, "actor", total_steps=steps), load=...)
    metrics = actor.train_batch(local_rows, grpo_loss(policy_loss_config(run.rl_config)), num_mini_batches=2)

The contract (collective calls: every rank of the engine's world calls them together):

* ``layout``: an ``EngineLayout`` (dp/tp/pp rank and size, ``returns_outputs``: the one rank per
  model-parallel group whose results the driver keeps). Nothing outside the engine reads
  Megatron's parallel state; ``dp_group`` is the torch.distributed group of the DP peers.
* ``infer_batch(batch, with_entropy=False) -> {'log_probs': [B,R], 'entropy'?}``: forward only,
  micro-batches through megatron's pipeline schedule, vocab-parallel log-softmax (the full vocab
  is never gathered). float32, 0 on masked positions, on every rank of the model-parallel group.
* ``train_batch(batch, loss, num_mini_batches=1, epochs=1, shuffle=False) -> metrics``: the loss
  is a function (``algorithms.losses.Loss``: ``grpo_loss(cfg)``, ``sft_loss()``, or any
  registered one). One optimizer step per mini-batch. The engine handles the global normalisers
  once: the loss's denominators are counted over the whole global mini-batch (all-reduced over
  DP) and the schedule's 1/num_microbatches and DDP's 1/dp averaging are undone, so a step does
  not depend on micro-batch size, number of micro-batches or DP size. Metrics are the loss's
  (exact weighted means over all DP ranks) plus grad_norm, lr and num_optimizer_steps.
* ``offload(params=True, grads=True, optimizer=True)`` / ``onload()``: park state in host memory
  while a colocated rollout engine runs; training afterwards is bit-identical.
* ``save_checkpoint(dir, iteration=None)`` / ``load_checkpoint(dir, iteration=None)``: model,
  optimizer, lr scheduler, RNG and step, written atomically (``engine.checkpoint``).
* ``export_hf_weights()``: iterator of (HF name, full tensor) on every rank, for weight sync.

Batch (dict of tensors, this DP rank's rows; see ``engine.batch``): ``input_ids [B,S]`` prompt
then response, right-padded; ``attention_mask [B,S]``; ``response_mask [B,R]``; plus the keys the
loss declares (GRPO: ``advantages``, ``old_log_probs``, ``ref_log_probs [B,R]``). All ranks of one
model-parallel (TP x PP) group must pass the same batch; each DP rank passes its own shard
(``batch.dp_shard_indices`` gives the shard that keeps global mini-batches intact).

The reference is the same class with ``MegatronEngineConfig(forward_only=True)``: no DDP, no
optimizer; ``train_batch`` raises.
"""
from __future__ import annotations

from typing import Any

__all__ = ["EngineLayout", "MegatronEngine", "MegatronEngineConfig", "dp_shard_indices"]

_LAZY = {
    "EngineLayout": "mindspeed_rl.engine.layout",
    "MegatronEngineConfig": "mindspeed_rl.engine.config",
    "MegatronEngine": "mindspeed_rl.engine.megatron_engine",
    "dp_shard_indices": "mindspeed_rl.engine.batch",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mindspeed_rl.engine' has no attribute {name!r}")
