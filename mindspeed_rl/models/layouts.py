"""How one Megatron parameter is laid out across tensor-parallel ranks, as pure tensor functions.

A ``Layout`` answers three questions for one Megatron parameter built from one or more HF tensors:

* ``hf_rows(tp, rank)``: which rows of each HF tensor rank ``rank`` needs (``None`` = the whole
  tensor). The streaming converter reads only those rows from disk.
* ``to_local(parts, tp, rank)``: the rank's Megatron shard from those parts (``parts[i]`` is the
  requested rows of HF tensor ``i``).
* ``to_hf(shards)``: the full HF tensors back from the list of all TP ranks' shards.

``split(full_hf_tensors, tp)`` is the all-in-memory form used by tests and weight sync. The same
functions serve the disk converter (row slices) and the in-memory paths, so the layout is written
once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

Rows = Optional[tuple[int, int]]


def _chunk_rows(n: int, tp: int, rank: int) -> tuple[int, int]:
    size = n // tp
    return rank * size, (rank + 1) * size


class Layout:
    """Base class: a Megatron parameter made from ``n_parts`` HF tensors."""

    n_parts = 1

    def hf_rows(self, tp: int, rank: int) -> list[Rows]:
        return [None] * self.n_parts

    def to_local(self, parts: Sequence[torch.Tensor], tp: int, rank: int) -> torch.Tensor:
        raise NotImplementedError

    def to_hf(self, shards: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def local_shape(self, hf_shapes: Sequence[Sequence[int]], tp: int) -> tuple[int, ...]:
        raise NotImplementedError

    def split(self, hf: Sequence[torch.Tensor], tp: int) -> list[torch.Tensor]:
        """All TP shards from the full HF tensors (in memory)."""
        out = []
        for rank in range(tp):
            rows = self.hf_rows(tp, rank)
            parts = [t if r is None else t[r[0] : r[1]] for t, r in zip(hf, rows)]
            out.append(self.to_local(parts, tp, rank).contiguous())
        return out


class Replicated(Layout):
    """Same tensor on every TP rank (norm weights)."""

    def to_local(self, parts, tp, rank):
        return parts[0]

    def to_hf(self, shards):
        return [shards[0]]

    def local_shape(self, hf_shapes, tp):
        return tuple(hf_shapes[0])


class ColumnParallel(Layout):
    """Split along the output dimension (dim 0)."""

    def __init__(self, rows: int):
        self.rows = rows

    def hf_rows(self, tp, rank):
        return [_chunk_rows(self.rows, tp, rank)]

    def to_local(self, parts, tp, rank):
        return parts[0]

    def to_hf(self, shards):
        return [torch.cat(list(shards), dim=0)]

    def local_shape(self, hf_shapes, tp):
        return (hf_shapes[0][0] // tp, *hf_shapes[0][1:])


class RowParallel(Layout):
    """Split along the input dimension (dim 1): o_proj, down_proj. Each rank needs all rows."""

    def to_local(self, parts, tp, rank):
        return parts[0].chunk(tp, dim=1)[rank]

    def to_hf(self, shards):
        return [torch.cat(list(shards), dim=1)]

    def local_shape(self, hf_shapes, tp):
        return (hf_shapes[0][0], hf_shapes[0][1] // tp)


@dataclass
class VocabParallel(Layout):
    """Embedding / output layer: rows padded with zeros to ``padded_vocab`` then split by TP.

    Padding rows are zeros; consumers must ignore logits past the true vocab size.
    """

    vocab_size: int
    padded_vocab: int

    def hf_rows(self, tp, rank):
        start, stop = _chunk_rows(self.padded_vocab, tp, rank)
        start, stop = min(start, self.vocab_size), min(stop, self.vocab_size)
        return [(start, stop)]

    def to_local(self, parts, tp, rank):
        start, stop = _chunk_rows(self.padded_vocab, tp, rank)
        real = parts[0]
        missing = (stop - start) - real.shape[0]
        if missing == 0:
            return real
        pad = torch.zeros((missing, *real.shape[1:]), dtype=real.dtype)
        return torch.cat([real, pad], dim=0)

    def to_hf(self, shards):
        return [torch.cat(list(shards), dim=0)[: self.vocab_size]]

    def local_shape(self, hf_shapes, tp):
        return (self.padded_vocab // tp, *hf_shapes[0][1:])


@dataclass
class QKV(Layout):
    """q, k, v projections (weight or bias) fused into ``linear_qkv``, grouped per query group.

    Megatron stores, for each query group g: the ``heads_per_group`` query heads of g, then k_g,
    then v_g (each ``head_dim`` rows). TP rank r owns query groups [r*G/tp, (r+1)*G/tp), i.e. a
    contiguous block of q rows and of k/v rows in the HF tensors.
    """

    num_heads: int
    num_query_groups: int
    head_dim: int
    n_parts = 3

    @property
    def heads_per_group(self) -> int:
        return self.num_heads // self.num_query_groups

    def hf_rows(self, tp, rank):
        q = _chunk_rows(self.num_heads * self.head_dim, tp, rank)
        kv = _chunk_rows(self.num_query_groups * self.head_dim, tp, rank)
        return [q, kv, kv]

    def to_local(self, parts, tp, rank):
        q, k, v = parts
        groups = self.num_query_groups // tp
        d = self.head_dim
        rest = q.shape[1:]
        q = q.reshape(groups, self.heads_per_group * d, *rest)
        k = k.reshape(groups, d, *rest)
        v = v.reshape(groups, d, *rest)
        return torch.cat([q, k, v], dim=1).reshape(-1, *rest)

    def _unfuse(self, shard):
        d = self.head_dim
        rest = shard.shape[1:]
        per_group = (self.heads_per_group + 2) * d
        g = shard.reshape(-1, per_group, *rest)
        q, k, v = torch.split(g, [self.heads_per_group * d, d, d], dim=1)
        return q.reshape(-1, *rest), k.reshape(-1, *rest), v.reshape(-1, *rest)

    def to_hf(self, shards):
        qs, ks, vs = zip(*(self._unfuse(s) for s in shards))
        return [torch.cat(qs, 0), torch.cat(ks, 0), torch.cat(vs, 0)]

    def local_shape(self, hf_shapes, tp):
        rows = (self.num_heads + 2 * self.num_query_groups) * self.head_dim // tp
        return (rows, *hf_shapes[0][1:])


class GateUp(Layout):
    """gate_proj and up_proj fused into ``linear_fc1``: rank r holds [gate_r; up_r]."""

    n_parts = 2

    def __init__(self, ffn_hidden_size: int):
        self.ffn = ffn_hidden_size

    def hf_rows(self, tp, rank):
        r = _chunk_rows(self.ffn, tp, rank)
        return [r, r]

    def to_local(self, parts, tp, rank):
        return torch.cat([parts[0], parts[1]], dim=0)

    def to_hf(self, shards):
        gates, ups = zip(*(s.chunk(2, dim=0) for s in shards))
        return [torch.cat(gates, 0), torch.cat(ups, 0)]

    def local_shape(self, hf_shapes, tp):
        return (2 * self.ffn // tp, *hf_shapes[0][1:])
