"""Torch's own ops for megatron-core's local-spec linear layers where their extra work is a no-op.

With one tensor-parallel rank, no sequence parallelism, no gradient-accumulation fusion and no
deferred embedding wgrad, megatron's ``LinearWithGradAccumulationAndAsyncCommunication`` computes
exactly ``F.linear`` (``matmul(x, W.t()) + b`` forward; ``g @ W`` and ``g.t() @ x`` backward), and
``copy_to_``/``reduce_from_tensor_model_parallel_region`` are identities. They are Python autograd
Functions, though: each call pays Python forward/backward bodies, ctx bookkeeping and autocast
decorators, which on small models (the CPU box, TP=1) costs more than the matmuls. Here those
calls go to torch's C++ ``F.linear`` and skip the identities; any call with TP>1, sequence
parallel, fusion, a frozen weight or a wgrad buffer takes megatron's own path unchanged.

Patched names live in ``megatron.core.tensor_parallel.layers`` (the only caller on the engine's
path: ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding); TE's layers do not use them.

RoPE (``megatron.core.transformer.attention.apply_rotary_pos_emb``): megatron's unfused bshd path
recomputes ``cos(freqs) * mscale`` and ``sin(freqs) * mscale`` for the query and again for the key
of every layer and micro-batch, and ends with ``cat((t, t_pass))`` even when ``t_pass`` is empty (a
full copy of q and k). ``RotaryEmbedding.forward`` is lru-cached, so the same ``freqs`` tensor comes
back for a sequence length: its cos/sin are cached per (freqs, mscale, dtype) and the empty cat is
skipped (the result is made contiguous, as cat's is). The arithmetic per element is megatron's, so
the values are bitwise equal. (A custom autograd Function that rotates half by half, without
``_rotate_half``'s cat, measured slower than this expression on CPU: 208 vs 196 us forward+backward
for a [125, 4, 16, 16] query.) Fused RoPE, packed sequences (THD), multi-latent attention and
trainable freqs take megatron's function.

Gated MLP (``megatron.core.transformer.mlp.MLP.forward``, unfused activation): megatron's ``glu``
computes ``act(x_glu) * (x_linear + config.glu_linear_offset)``; with the default offset 0.0 the
add is one more full pass over ``x_linear`` (and one more saved tensor) that returns the same
values (``x + 0.0 == x``; only a ``-0.0`` becomes ``+0.0``). The plain case (no fused/TE activation,
no clamp, offset 0.0, no per-token scale) drops it; everything else runs megatron's forward. With
SiLU (SwiGLU, Qwen's MLP) an autograd Function writes both halves' gradients into one buffer, where
autograd's ``chunk`` backward would cat them (a full copy of the fc1 gradient per layer); it keeps
the same two tensors for backward and runs the same kernels (``silu_backward``, ``mul``), so the
values are bitwise autograd's (370 vs 416 us forward+backward for a [125, 4, 1536] fc1 output, one
thread).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

_PATCHED = ("linear_with_grad_accumulation_and_async_allreduce", "copy_to_tensor_model_parallel_region",
            "reduce_from_tensor_model_parallel_region")
_ROPE_CACHE_SIZE = 32  # distinct (freqs, mscale, dtype); RotaryEmbedding's own lru_cache holds 32 freqs
_applied = False


def _single_rank(group) -> bool:
    return group is not None and group.size() == 1


def _linear(original):
    @functools.wraps(original)
    def linear(input, weight, bias, gradient_accumulation_fusion, allreduce_dgrad, sequence_parallel,
               grad_output_buffer=None, wgrad_deferral_limit=0, async_grad_allreduce=None, tp_group=None):
        if (not gradient_accumulation_fusion and not allreduce_dgrad and not sequence_parallel
                and grad_output_buffer is None and async_grad_allreduce is None
                and _single_rank(_group(tp_group))):
            return F.linear(input, weight, bias)
        return original(input, weight, bias, gradient_accumulation_fusion, allreduce_dgrad, sequence_parallel,
                        grad_output_buffer, wgrad_deferral_limit, async_grad_allreduce, tp_group)

    linear.warned = getattr(original, "warned", False)
    return linear


def _identity_on_one_rank(original):
    @functools.wraps(original)
    def region(input_, group=None):
        if _single_rank(_group(group)):
            return input_
        return original(input_, group=group)

    return region


def _group(group):
    """The TP group a call runs on: its own, else the default one (RowParallelLinear passes None;
    megatron's lookup of the default warns on every call)."""
    if group is not None:
        return group
    from megatron.core import parallel_state

    if not parallel_state.model_parallel_is_initialized():
        return None
    return parallel_state.get_tensor_model_parallel_group()


class _SwiGLU(torch.autograd.Function):
    """``silu(a) * b`` of the fc1 output ``[..., a | b]``; backward fills one gradient buffer by halves."""

    @staticmethod
    def forward(ctx, x):
        a, b = torch.chunk(x, 2, dim=-1)
        silu_a = F.silu(a)
        ctx.save_for_backward(x, silu_a)  # what autograd keeps for silu and mul: x's storage and silu(a)
        return silu_a * b

    @staticmethod
    def backward(ctx, grad):
        x, silu_a = ctx.saved_tensors
        a, b = torch.chunk(x, 2, dim=-1)
        grad_x = torch.empty_like(x)
        grad_a, grad_b = torch.chunk(grad_x, 2, dim=-1)
        torch.mul(grad, silu_a, out=grad_b)
        torch.ops.aten.silu_backward.grad_input(grad * b, a, grad_input=grad_a)
        return grad_x


def _rope(original):
    from megatron.core.models.common.embeddings.rope_utils import _rotate_half

    cache = {}  # (id(freqs), mscale, dtype) -> (freqs, its _version, cos_, sin_); freqs kept alive: ids stay unique

    def cos_sin(freqs, mscale, dtype):
        key = (id(freqs), float(mscale), dtype)
        hit = cache.get(key)
        if hit is not None and hit[0] is freqs and hit[1] == freqs._version:
            return hit[2], hit[3]
        # megatron's expressions, once per freqs instead of once per q/k per layer
        cos_ = (torch.cos(freqs) * mscale).to(dtype)
        sin_ = (torch.sin(freqs) * mscale).to(dtype)
        if not torch.is_inference_mode_enabled():  # an inference tensor cannot be saved for backward later
            if len(cache) >= _ROPE_CACHE_SIZE:
                cache.clear()
            cache[key] = (freqs, freqs._version, cos_, sin_)
        return cos_, sin_

    @functools.wraps(original)
    def apply_rotary_pos_emb(t, freqs, config, cu_seqlens=None, mscale=1.0, cp_group=None):
        if (config.apply_rope_fusion or cu_seqlens is not None or config.multi_latent_attention
                or freqs.requires_grad):
            return original(t, freqs, config, cu_seqlens=cu_seqlens, mscale=mscale, cp_group=cp_group)
        cos_, sin_ = cos_sin(freqs, mscale, t.dtype)
        rot_dim = freqs.shape[-1]
        if t.shape[-1] == rot_dim:  # no pass-through part: megatron's cat would only copy
            return ((t * cos_) + (_rotate_half(t, config.rotary_interleaved) * sin_)).contiguous()
        t, t_pass = t[..., :rot_dim], t[..., rot_dim:]
        t = (t * cos_) + (_rotate_half(t, config.rotary_interleaved) * sin_)
        return torch.cat((t, t_pass), dim=-1)

    apply_rotary_pos_emb.cache = cache
    return apply_rotary_pos_emb


def _mlp_forward(original):
    @functools.wraps(original)
    def forward(self, hidden_states, per_token_scale=None, **kwargs):
        c = self.config
        # kwargs (padding_mask, ...) are unused by megatron's MLP.forward too
        if (per_token_scale is not None or c.use_te_activation_func or c.bias_activation_fusion
                or not c.gated_linear_unit or c.activation_func_clamp_value is not None or c.glu_linear_offset != 0.0):
            return original(self, hidden_states, per_token_scale=per_token_scale, **kwargs)
        forward.fast_calls += 1  # tests check that this path, not megatron's, ran
        intermediate, bias = self.linear_fc1(hidden_states)
        if bias is not None:
            intermediate = intermediate + bias
        if c.activation_func is F.silu:
            return self.linear_fc2(_SwiGLU.apply(intermediate))
        x_glu, x_linear = torch.chunk(intermediate, 2, dim=-1)
        return self.linear_fc2(c.activation_func(x_glu) * x_linear)  # (output, output_bias), as megatron's

    forward.fast_calls = 0
    return forward


def apply() -> None:
    """Install the fast paths (idempotent, process-wide; each call still checks its own group)."""
    global _applied
    if _applied:
        return
    from megatron.core.tensor_parallel import layers

    layers.linear_with_grad_accumulation_and_async_allreduce = _linear(
        layers.linear_with_grad_accumulation_and_async_allreduce)
    layers.copy_to_tensor_model_parallel_region = _identity_on_one_rank(layers.copy_to_tensor_model_parallel_region)
    layers.reduce_from_tensor_model_parallel_region = _identity_on_one_rank(
        layers.reduce_from_tensor_model_parallel_region)
    from megatron.core.transformer import attention

    attention.apply_rotary_pos_emb = _rope(attention.apply_rotary_pos_emb)
    from megatron.core.transformer.mlp import MLP

    MLP.forward = _mlp_forward(MLP.forward)
    _applied = True


def originals() -> dict:
    """megatron's own functions behind the fast paths (for tests comparing the two)."""
    from megatron.core.tensor_parallel import layers

    return {name: getattr(getattr(layers, name), "__wrapped__", getattr(layers, name)) for name in _PATCHED}


def original_mlp_forward():
    """megatron's ``MLP.forward`` behind the gated-MLP fast path (for tests)."""
    from megatron.core.transformer.mlp import MLP

    return getattr(MLP.forward, "__wrapped__", MLP.forward)


def original_rope():
    """megatron's ``apply_rotary_pos_emb`` behind the RoPE fast path (for tests)."""
    from megatron.core.transformer import attention

    return getattr(attention.apply_rotary_pos_emb, "__wrapped__", attention.apply_rotary_pos_emb)
