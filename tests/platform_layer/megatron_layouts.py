"""Rank functions for the platform acceptance test: a tiny Qwen2-architecture megatron-core
GPTModel at several TP/PP layouts, all starting from the same full weights.

The TP1 model is saved once with megatron's dist_checkpointing; every other layout loads it
resharded, so each layout starts from identical full weights without this test relying on our
own shard mapping (that has its own tests in tests/convert).
"""
import torch

from mindspeed_rl.testing import tiny

VOCAB, SEQ, BATCH = 96, 12, 2
# GQA (4 heads, 2 groups), QKV bias, SwiGLU, RMSNorm, untied output layer; vocab 96 is not padded
HF_CONFIG = tiny.tiny_qwen2_config(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                                   num_attention_heads=4, num_key_value_heads=2)


def _build(tp: int, pp: int):
    tiny.setup_model_parallel(tp, pp)
    return tiny.build_gpt_model(HF_CONFIG, tp, pp, padded_vocab=VOCAB)


def _batch():
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    labels = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    return tokens, labels


def save_reference(rank, world_size, ckpt_dir):
    """TP1 PP1: build, save with dist_checkpointing, then run the same check as every layout."""
    from megatron.core import dist_checkpointing

    model = _build(1, 1)
    dist_checkpointing.save(model.sharded_state_dict(), ckpt_dir)
    return forward_backward(model)


def run_layout(rank, world_size, tp, pp, ckpt_dir):
    from megatron.core import dist_checkpointing

    model = _build(tp, pp)
    state = dist_checkpointing.load(model.sharded_state_dict(), ckpt_dir)
    model.load_state_dict(state)
    return forward_backward(model)


def forward_backward(model):
    """One forward+backward through megatron's schedule; returns full-vocab logits, loss, grad norm
    (on the rank that holds the last stage and TP rank 0; None elsewhere)."""
    from megatron.core import parallel_state as ps
    from megatron.core.optimizer.clip_grads import get_grad_norm_fp32

    logits, loss = tiny.run_schedule(model, *_batch())
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), "backward produced no or non-finite grads"
    # Grad norm over the whole model-parallel group: shared parameters counted once.
    params_for_norm = [
        p.grad
        for p in model.parameters()
        if p.grad is not None
        and (getattr(p, "tensor_model_parallel", False) or ps.get_tensor_model_parallel_rank() == 0)
    ]
    grad_norm = get_grad_norm_fp32(params_for_norm, grad_stats_parallel_group=ps.get_model_parallel_group())
    if logits is not None:
        return {"logits": logits, "loss": loss, "grad_norm": float(grad_norm)}
    return None
