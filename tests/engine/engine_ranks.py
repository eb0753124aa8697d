"""Shared pieces of the engine tests: a tiny Qwen2 config, a variable-length GRPO batch, and rank
functions that build engines from a converted checkpoint (the HF reference log-probs are
``mindspeed_rl.testing.tiny.hf_log_probs``)."""
from __future__ import annotations

import torch

from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config

N_SAMPLES = 8
MAX_SEQ = 16


def model_config() -> dict:
    # 2 layers so that PP2 has one layer per stage; vocab 250 is padded to 256 (TP1/TP2: 128*tp),
    # which exercises the padded-vocab masking.
    return tiny_qwen2_config(num_hidden_layers=2)


def make_batch(vocab_size: int, n: int = N_SAMPLES, seed: int = 5) -> dict:
    """Right-padded prompt+response rows of different lengths (one response of length 1)."""
    g = torch.Generator().manual_seed(seed)
    prompt_lens = torch.randint(2, 7, (n,), generator=g)
    resp_lens = torch.randint(1, MAX_SEQ - 6, (n,), generator=g)
    resp_lens[0] = 1
    width = int(resp_lens.max())
    input_ids = torch.zeros(n, MAX_SEQ, dtype=torch.long)
    attention_mask = torch.zeros(n, MAX_SEQ, dtype=torch.long)
    response_mask = torch.zeros(n, width, dtype=torch.long)
    for i in range(n):
        total = int(prompt_lens[i] + resp_lens[i])
        input_ids[i, :total] = torch.randint(2, vocab_size, (total,), generator=g)
        attention_mask[i, :total] = 1
        response_mask[i, : int(resp_lens[i])] = 1
    adv = torch.randn(n, width, generator=g) * response_mask
    old = (torch.randn(n, width, generator=g) * 0.05 - 3.0) * response_mask
    ref = (torch.randn(n, width, generator=g) * 0.05 - 3.0) * response_mask
    return {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask,
            "advantages": adv, "old_log_probs": old, "ref_log_probs": ref}


def engine_config(tp: int, pp: int, **kw):
    from mindspeed_rl.engine import MegatronEngineConfig

    # adam_eps 1e-6, not 1e-8: a parameter whose true gradient is exactly zero (layer 1's k_proj.bias:
    # softmax ignores a shift shared by all keys) gets roundoff-sized grads (~1e-10), and with eps 1e-8
    # Adam turns those into steps of lr * 1e-2 whose sign is the roundoff's, i.e. the layouts' parameters
    # then differ by noise at these tests' 1e-5 edge (seen 1.13e-5 on one CPU). eps is the same in
    # every layout, so the invariance the tests assert is unchanged for every real gradient.
    base = dict(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, micro_batch_size=2,
                params_dtype="fp32", lr=1e-3, clip_grad=1.0, weight_decay=0.01, seed=1234, adam_eps=1e-6)
    base.update(kw)
    return MegatronEngineConfig(**base)


def loss_config(**kw):
    from mindspeed_rl.algorithms import PolicyLossConfig

    base = dict(clip_ratio=0.2, use_kl_loss=True, kl_loss_coef=0.1, kl_loss_type="low_var_kl",
                entropy_coeff=0.01, loss_agg_mode="token-mean")
    base.update(kw)
    return PolicyLossConfig(**base)


def dp_rows(batch: dict, engine) -> dict:
    from mindspeed_rl.engine.batch import dp_shard_indices, select_rows

    idx = dp_shard_indices(batch["input_ids"].shape[0], engine.dp_size, engine.dp_rank)
    return select_rows(batch, idx)


def hf_weights(engine) -> dict:
    return {k: v.clone() for k, v in engine.export_hf_weights()}
