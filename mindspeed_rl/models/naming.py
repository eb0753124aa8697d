"""Megatron state-dict names: canonical (local spec) <-> Transformer Engine spec, local <-> global layer index.

With the TE spec the RMSNorms are fused into the following linear layer, so
``input_layernorm.weight`` lives at ``self_attention.linear_qkv.layer_norm_weight`` and
``pre_mlp_layernorm.weight`` at ``mlp.linear_fc1.layer_norm_weight``. Everything in this room
speaks canonical names; translate at the model boundary.
"""
from __future__ import annotations

import re

_CANONICAL_TO_TE = {
    "input_layernorm.weight": "self_attention.linear_qkv.layer_norm_weight",
    "pre_mlp_layernorm.weight": "mlp.linear_fc1.layer_norm_weight",
}
_TE_TO_CANONICAL = {v: k for k, v in _CANONICAL_TO_TE.items()}
_LAYER = re.compile(r"^(?P<prefix>(?:.*\.)?decoder\.layers\.)(?P<idx>\d+)\.(?P<rest>.+)$")


def _swap(name: str, table: dict[str, str]) -> str:
    m = _LAYER.match(name)
    if m and m.group("rest") in table:
        return f"{m.group('prefix')}{m.group('idx')}.{table[m.group('rest')]}"
    return name


def to_te_name(name: str) -> str:
    """Canonical Megatron name -> the name in a Transformer-Engine-spec model."""
    return _swap(name, _CANONICAL_TO_TE)


def from_te_name(name: str) -> str:
    """Any Megatron name (local or TE spec) -> canonical name."""
    return _swap(name, _TE_TO_CANONICAL)


def is_extra_state(name: str) -> bool:
    """TE / fp8 bookkeeping entries (``*._extra_state``), not weights."""
    return name.endswith("._extra_state")


def shift_layer_index(name: str, offset: int) -> str:
    """Add ``offset`` to the layer index of a ``decoder.layers.N.*`` name (local <-> global)."""
    m = _LAYER.match(name)
    if not m:
        return name
    return f"{m.group('prefix')}{int(m.group('idx')) + offset}.{m.group('rest')}"


def layer_index(name: str):
    """The layer index of a ``decoder.layers.N.*`` name, or None."""
    m = _LAYER.match(name)
    return int(m.group("idx")) if m else None
