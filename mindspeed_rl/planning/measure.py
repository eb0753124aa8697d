"""Measured tensor memory of one actor engine on CPU, phase by phase, to check ``plan_memory``.

What is counted: bytes of tensor storage allocated through torch's CPU allocator while the
engine is built and runs, from the torch profiler's allocation events (each carries the
allocator's running total), so the process's runtime baseline (torch, megatron, Python, the
allocator's cached pages) is not in it. Phases, for one rank at TP1/PP1/DP1:

* ``static``: after the engine is built, i.e. parameters + Megatron's grad buffer (allocated by DDP
  at construction) + the engine's own small buffers;
* ``optimizer``: what the first optimizer step adds and keeps (Adam m and v, fp32 main params);
* ``log_prob_transient``: peak during ``infer_batch`` over what was live before it
  (one forward's working set plus the logits and log-prob copies);
* ``update_transient``: peak during the second ``update`` (optimizer state present) over
  ``static`` + ``optimizer``: activations kept for backward, the logits/loss copies and
  Megatron's attention-score buffer (allocated by the first forward, kept since);
* ``update_peak``: the second update's peak, everything included.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

_MARKS = ("built", "log_probs", "update1", "update2")


@dataclass
class MeasuredMemory:
    static: int
    optimizer: int
    log_prob_transient: int
    update_transient: int
    update_peak: int

    def as_dict(self) -> dict:
        return asdict(self)


def _allocations_and_marks(prof):
    from torch._C._profiler import _EventType

    allocs, marks = [], {}
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        kind, fields = node.typed
        if kind == _EventType.Allocation and fields.device.type == "cpu":
            allocs.append((node.start_time_ns, fields.total_allocated))
        elif node.name in _MARKS:
            marks[node.name] = (node.start_time_ns, node.end_time_ns)
        stack.extend(node.children)
    allocs.sort()
    return allocs, marks


def _live_at(allocs, t: int) -> int:
    live = 0
    for when, total in allocs:
        if when > t:
            break
        live = total
    return live


def _peak_in(allocs, start: int, end: int) -> int:
    return max([total for when, total in allocs if start <= when <= end] or [0])


def measure_engine_memory(rank, world_size, model: dict, engine_kwargs: dict, seq: int, n_rows: int,
                          response_len: int | None = None) -> dict:
    """Run in a fresh rank process (``run_distributed``): build an engine, one log-prob pass and two
    updates on ``n_rows`` random rows of length ``seq`` (the last ``response_len``, default half, the
    response); returns
    ``MeasuredMemory.as_dict()``."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from mindspeed_rl.algorithms import PolicyLossConfig, grpo_loss
    from mindspeed_rl.engine import MegatronEngine, MegatronEngineConfig

    g = torch.Generator().manual_seed(0)
    r = response_len or seq // 2
    batch = {"input_ids": torch.randint(2, model["vocab_size"], (n_rows, seq), generator=g),
             "attention_mask": torch.ones(n_rows, seq, dtype=torch.long),
             "response_mask": torch.ones(n_rows, r, dtype=torch.long), "advantages": torch.randn(n_rows, r, generator=g)}
    loss = grpo_loss(PolicyLossConfig(use_kl_loss=False, entropy_coeff=0.0))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with record_function("built"):
            engine = MegatronEngine(model, MegatronEngineConfig(**engine_kwargs))
        with record_function("log_probs"):
            engine.infer_batch(batch)
        with record_function("update1"):
            engine.train_batch(batch, loss)
        with record_function("update2"):
            engine.train_batch(batch, loss)
    allocs, marks = _allocations_and_marks(prof)
    missing = [m for m in _MARKS if m not in marks]
    if missing:
        raise RuntimeError(f"profiler lost the phase markers {missing}")
    static = _live_at(allocs, marks["built"][1])
    before_lp = _live_at(allocs, marks["log_probs"][0])
    after_u1 = _live_at(allocs, marks["update1"][1])
    u2_peak = _peak_in(allocs, *marks["update2"])
    optimizer = after_u1 - _live_at(allocs, marks["update1"][0])
    return MeasuredMemory(
        static=static,
        optimizer=optimizer,
        log_prob_transient=_peak_in(allocs, *marks["log_probs"]) - before_lp,
        update_transient=u2_peak - static - optimizer,
        update_peak=u2_peak,
    ).as_dict()


def hf_config_of(cfg) -> dict:
    """The transformers config dict of ``cfg.model`` (what a converted checkpoint would carry)."""
    m = cfg.model
    return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": m.vocab_size,
            "hidden_size": m.hidden_size, "intermediate_size": m.ffn_hidden_size, "num_hidden_layers": m.num_layers,
            "num_attention_heads": m.num_attention_heads, "num_key_value_heads": m.num_query_groups,
            "max_position_embeddings": m.max_position_embeddings, "rms_norm_eps": m.rms_norm_eps,
            "rope_theta": m.rope_theta, "tie_word_embeddings": m.tie_word_embeddings, "torch_dtype": "float32"}


def plan_vs_measured(cfg, timeout: float = 900.0) -> dict[str, tuple[float, float]]:
    """``{phase term: (planned bytes, measured bytes)}`` for ``cfg``'s actor on one CPU rank (TP1,
    PP1, no distributed optimizer; one micro-batch of ``actor_config.micro_batch_size`` rows of
    ``seq_length`` tokens, the last ``sampling_config.max_tokens`` the response)."""
    from mindspeed_rl.config.components import megatron_engine_config
    from mindspeed_rl.planning.memory_plan import DTYPE_BYTES, plan_memory
    from mindspeed_rl.utils.rank_processes import run_distributed

    a, mt = cfg.actor_config, cfg.megatron_training
    if (a.tensor_model_parallel_size, a.pipeline_model_parallel_size, cfg.rl_config.actor_resource.num_devices) != (1, 1, 1):
        raise ValueError("plan_vs_measured measures one CPU rank: set actor_config.tensor/pipeline_model_parallel_size=1 "
                         "and rl_config.actor_resource.num_devices=1")
    engine = dict(micro_batch_size=a.micro_batch_size, params_dtype=a.params_dtype, use_distributed_optimizer=False,
                  recompute_activations=a.recompute_activations,
                  make_vocab_size_divisible_by=cfg.model.make_vocab_size_divisible_by,
                  kernels=megatron_engine_config(cfg, "actor").kernels)  # the attention the plan assumes
    response = min(cfg.generate_config.sampling_config.max_tokens, mt.seq_length)
    got = run_distributed(measure_engine_memory, 1, hf_config_of(cfg), engine, mt.seq_length, a.micro_batch_size,
                          response, timeout=timeout)[0]
    phases = {p.name: p.parts for p in plan_memory(cfg).phases}
    up, lp = phases["update"], phases["log_probs"]
    # Megatron's mixed-precision optimizer makes its fp32 main params when it is built, Adam m and v
    # at the first step: the plan's "optimizer state" holds both
    e = DTYPE_BYTES[a.params_dtype]
    main = up["actor params"] / e * 4 if e != 4 else 0.0
    return {
        "params + grad buffer (+ fp32 main params)": (up["actor params"] + up["actor grads"] + main, got["static"]),
        "Adam m and v": (up["optimizer state"] - main, got["optimizer"]),
        "update activations + logits": (up["activations"] + up["logits"], got["update_transient"]),
        "log-prob activations + logits": (lp["activations"] + lp["logits"], got["log_prob_transient"]),
    }
