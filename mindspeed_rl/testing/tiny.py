"""The tiny models of the tests, one definition each: the HF side (a random Qwen2 model, a saved
HF directory), the Megatron side (model-parallel set-up, a GPTModel built through the bridge, one
pass through megatron's pipeline schedule), and the independent HF reference log-probs.

The Megatron functions run inside a gloo rank (``mindspeed_rl.testing.run_distributed``); they
import megatron-core only when called. Shapes come from ``models.random_checkpoint``'s
``tiny_qwen2_config`` (the package's own demo builds its model there too)::

    model = tiny_qwen2(seed=0, **SMALL)                       # transformers, fp32, eval mode
    save_tiny_qwen2(out_dir, tokenizer=tok, **SMALL)          # HF directory with tok's vocabulary
    setup_model_parallel(tp, pp)                              # in each rank
    gpt = build_gpt_model(hf_config, tp, pp, padded_vocab)    # bridge's config, local spec
    logits, loss = run_schedule(gpt, tokens, labels)          # full-vocab logits on one rank
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from mindspeed_rl.models.random_checkpoint import random_hf_model, tiny_qwen2_config

__all__ = ["SMALL", "tiny_qwen2_config", "tiny_qwen2", "save_tiny_qwen2", "setup_model_parallel",
           "build_gpt_model", "run_schedule", "hf_log_probs"]

# Two layers of width 32: the smallest shape with GQA (4 heads, 2 groups) that still splits over TP2/PP2.
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def tiny_qwen2(seed: int = 0, **overrides):
    """A randomly initialised transformers Qwen2ForCausalLM of ``tiny_qwen2_config(**overrides)``."""
    return random_hf_model(tiny_qwen2_config(**overrides), seed=seed)


def save_tiny_qwen2(out_dir: str, seed: int = 0, tokenizer=None, **overrides) -> str:
    """``tiny_qwen2`` saved as a HF directory (safetensors). With ``tokenizer``: its vocabulary size
    and EOS (as BOS and EOS) unless overridden, and its files saved beside the weights."""
    if tokenizer is not None:
        overrides.setdefault("vocab_size", len(tokenizer))
        overrides.setdefault("bos_token_id", tokenizer.eos_token_id)
        overrides.setdefault("eos_token_id", tokenizer.eos_token_id)
    tiny_qwen2(seed, **overrides).save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir


# ---------------------------------------------------------------- Megatron side (inside a rank)
def setup_model_parallel(tp: int, pp: int, seed: int = 1234) -> None:
    """Megatron's model-parallel groups on this rank's world, through the platform layer."""
    from mindspeed_rl.platform import current_platform

    current_platform().apply_megatron_adaptor()
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    ps.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    model_parallel_cuda_manual_seed(seed)


def build_gpt_model(hf_config, tp: int, pp: int, padded_vocab: Optional[int] = None,
                    num_layer_list: Optional[Sequence[int]] = None, params_dtype=torch.float32):
    """This rank's megatron-core GPTModel of a HF config (the bridge's TransformerConfig, local spec)."""
    from megatron.core import parallel_state as ps
    from megatron.core.models.gpt import GPTModel

    from mindspeed_rl.models import get_bridge

    bridge = get_bridge(hf_config)
    cfg = bridge.transformer_config(tp, pp, params_dtype=params_dtype, num_layer_list=num_layer_list)
    return GPTModel(cfg, bridge.layer_spec(use_te=False), **bridge.gpt_model_kwargs(tp, padded_vocab=padded_vocab),
                    pre_process=ps.is_pipeline_first_stage(), post_process=ps.is_pipeline_last_stage())


def run_schedule(model, tokens: torch.Tensor, labels: Optional[torch.Tensor] = None):
    """One micro-batch through megatron's pipeline schedule. Without ``labels``: forward only, in
    eval mode. With them: forward and backward of the mean cross-entropy (gradients left in the
    parameters). Returns ``(logits, loss)``: the full-vocab (TP-gathered) logits ``[b, s, vocab]``
    and the loss (None without labels) on the last stage's TP rank 0; ``(None, None)`` elsewhere."""
    from megatron.core import parallel_state as ps
    from megatron.core import tensor_parallel
    from megatron.core.pipeline_parallel import get_forward_backward_func

    batch, seq = tokens.shape
    positions = torch.arange(seq).unsqueeze(0).expand(batch, -1)
    captured = {}

    def loss_func(logits):
        captured["logits"] = tensor_parallel.gather_from_tensor_model_parallel_region(logits).detach().clone()
        if labels is None:
            return logits.sum() * 0.0, {}
        per_token = tensor_parallel.vocab_parallel_cross_entropy(logits.transpose(0, 1).contiguous(),
                                                                 labels.t().contiguous())
        loss = per_token.mean()
        return loss, {"loss": loss.detach()}

    def forward_step(data_iterator, model):
        return model(tokens, positions, None), loss_func

    forward_only = labels is None
    if forward_only:
        model.eval()
    else:
        model.config.finalize_model_grads_func = None
        model.zero_grad()
    with torch.set_grad_enabled(not forward_only):
        losses = get_forward_backward_func()(forward_step_func=forward_step, data_iterator=iter([None]),
                                             model=[model], num_microbatches=1, seq_length=seq,
                                             micro_batch_size=batch, forward_only=forward_only)
    if not (ps.is_pipeline_last_stage() and ps.get_tensor_model_parallel_rank() == 0):
        return None, None
    return captured["logits"], (None if forward_only else losses[0]["loss"])


# ---------------------------------------------------------------- the independent reference
def hf_log_probs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies of the response tokens of a right-padded GRPO batch
    (``input_ids``, ``attention_mask``, ``response_mask``), from a transformers forward pass: a
    full log-softmax and a python loop over the tokens, independent of the engine's code."""
    with torch.no_grad():
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    logp_all = torch.log_softmax(logits, dim=-1)
    n, r = batch["response_mask"].shape
    lp = torch.zeros(n, r)
    ent = torch.zeros(n, r)
    for i in range(n):
        p_len = int(batch["attention_mask"][i].sum() - batch["response_mask"][i].sum())
        for j in range(int(batch["response_mask"][i].sum())):
            pos = p_len - 1 + j
            tok = batch["input_ids"][i, pos + 1]
            lp[i, j] = logp_all[i, pos, tok]
            ent[i, j] = -(logp_all[i, pos].exp() * logp_all[i, pos]).sum()
    return lp, ent
