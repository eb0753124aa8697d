"""Core attention for megatron-core's local (non-TE) layer spec through torch's fused
``scaled_dot_product_attention``.

megatron-core's ``DotProductAttention`` materialises the ``[b, heads, s, s]`` scores with
``baddbmm``, builds and applies a causal mask, runs a separate softmax and a second ``bmm``: three
full passes over the score matrix plus the mask, each kept for backward. torch's SDPA does the same
maths in one kernel (flash / memory-efficient on CPU and CUDA), so the local spec (CPU, CUDA
without Transformer Engine) stops being the slow path.

Only the plain case takes the fused kernel: causal self-attention with no explicit mask, no
attention bias, no packed sequences, no attention dropout in effect, the vanilla softmax, no sliding
window, no query-key layer scaling. Anything else runs ``DotProductAttention``'s own forward, so a
model with those features behaves exactly as before. GQA: ``enable_gqa`` maps query head ``h`` to
key/value group ``h // (heads / groups)``, the same as megatron's ``repeat_interleave``.
"""
from __future__ import annotations

import torch.nn.functional as F
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType


class SDPAttention(DotProductAttention):
    """``DotProductAttention`` whose plain causal case runs ``F.scaled_dot_product_attention``."""

    def _plain_causal(self, query, key, attention_mask, attn_mask_type, attention_bias, packed_seq_params) -> bool:
        mask_type = attn_mask_type if attn_mask_type is not None else self.attn_mask_type
        dropout = self.attention_dropout.p if self.training else 0.0
        return (attention_mask is None and mask_type == AttnMaskType.causal and attention_bias is None
                and packed_seq_params is None and dropout == 0.0 and self.softmax_offset is None
                and self.scale_mask_softmax.window_size is None and not self.config.apply_query_key_layer_scaling
                and query.size(0) == key.size(0))  # causal self-attention: sq == sk (no KV cache)

    def forward(self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None,
                packed_seq_params=None):
        if not self._plain_causal(query, key, attention_mask, attn_mask_type, attention_bias, packed_seq_params):
            return super().forward(query, key, value, attention_mask, attn_mask_type=attn_mask_type,
                                   attention_bias=attention_bias, packed_seq_params=packed_seq_params)
        # megatron's layout [s, b, heads, dim] -> SDPA's [b, heads, s, dim]
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        gqa = self.num_attention_heads_per_partition != self.num_query_groups_per_partition
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.softmax_scale, enable_gqa=gqa)
        # [b, heads, s, dim] -> [s, b, heads * dim], what DotProductAttention returns
        out = out.permute(2, 0, 1, 3).contiguous()
        return out.view(*out.shape[:2], self.hidden_size_per_partition)


CORE_ATTENTION = {"sdpa": SDPAttention}  # the engine's core_attention choice -> module (None: the spec's own)


def core_attention_module(name):
    """The module for ``ResolvedKernels.core_attention`` ('sdpa' | 'dot_product' | None)."""
    if name in (None, "dot_product"):
        return None
    return CORE_ATTENTION[name]
