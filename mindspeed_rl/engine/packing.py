"""Packed sequences (THD, "remove padding"): a micro-batch's right-padded rows laid end to end as
one sequence, so no padding token is computed; attention stays within each row through the
cumulative sequence lengths that Transformer Engine's THD attention reads
(``megatron.core.packed_seq_params.PackedSeqParams``).

Only the bookkeeping lives here, and it is plain torch (tested on CPU): ``pack`` builds the
packed tokens, the position ids (restarting at 0 for every row) and ``cu_seqlens``; ``unpack``
puts per-token outputs back into rows; ``packed_index`` maps the engine's ``[B, R]`` response
positions to packed positions (so the engine gathers the response logits straight from the
packed output, never unpacking ``[B, S, vocab]``). ``block_causal_mask`` is the attention pattern
the kernel implements, for checks without the kernel. The engine uses packing only where
``engine.kernels`` allows it (TE attention on CUDA).

Rows with no tokens (the fully masked rows that fill the last micro-batch) get no segment; their
outputs are masked by the loss. When the packed length must divide by the TP size (sequence
parallelism), a padding segment of its own is appended: it attends only to itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PackedRows:
    tokens: torch.Tensor  # [1, T] token ids of every row's real tokens, end to end (+ padding segment)
    position_ids: torch.Tensor  # [1, T] 0.. len-1 for each row
    cu_seqlens: torch.Tensor  # [segments + 1] int32, start of each segment in T (0 first, T last)
    max_seqlen: int  # longest segment
    lengths: torch.Tensor  # [B] real tokens of each row (0 for an empty row)
    offsets: torch.Tensor  # [B] where row i starts in T
    width: int  # S, the padded width of the rows

    @property
    def total(self) -> int:
        return int(self.tokens.shape[1])


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, multiple: int = 1) -> PackedRows:
    """Pack right-padded rows ``[B, S]`` (attention_mask 1 on the real tokens, a prefix of each row)."""
    lengths = attention_mask.long().sum(-1)
    b, s = input_ids.shape
    offsets = torch.cumsum(lengths, 0) - lengths
    keep = attention_mask.bool()
    if b and not bool((keep == (torch.arange(s, device=keep.device) < lengths.unsqueeze(-1))).all()):
        raise ValueError("pack: attention_mask must be 1 on a prefix of each row (right padding)")
    tokens = input_ids[keep]
    positions = (torch.arange(s, device=input_ids.device).unsqueeze(0).expand(b, s))[keep]
    seg = [int(n) for n in lengths.tolist() if n > 0]
    total = int(tokens.numel())
    pad = (-total) % multiple if multiple > 1 else 0
    if total == 0 and pad == 0:
        pad = max(multiple, 1)  # an empty micro-batch still runs one (padding) token through the schedule
    if pad:
        tokens = torch.cat([tokens, tokens.new_zeros(pad)])
        positions = torch.cat([positions, torch.arange(pad, device=positions.device)])
        seg.append(pad)
    cu = torch.zeros(len(seg) + 1, dtype=torch.int32)
    if seg:
        cu[1:] = torch.cumsum(torch.tensor(seg, dtype=torch.int32), 0)
    return PackedRows(tokens.unsqueeze(0), positions.unsqueeze(0), cu, max(seg) if seg else 0, lengths, offsets, s)


def unpack(values: torch.Tensor, packed: PackedRows) -> torch.Tensor:
    """``[T, ...]`` (or ``[1, T, ...]``) per-token values back to ``[B, S, ...]``, zeros on padding."""
    if values.dim() >= 2 and values.shape[0] == 1 and values.shape[1] == packed.total:
        values = values[0]
    if values.shape[0] != packed.total:
        raise ValueError(f"unpack: {values.shape[0]} packed positions, expected {packed.total}")
    b = packed.lengths.shape[0]
    out = values.new_zeros((b, packed.width, *values.shape[1:]))
    keep = torch.arange(packed.width).unsqueeze(0) < packed.lengths.unsqueeze(-1)
    real = int(packed.lengths.sum())
    out[keep] = values[:real]
    return out


def packed_index(packed: PackedRows, positions: torch.Tensor) -> torch.Tensor:
    """Packed position of row i's position ``positions[i, j]`` (clamped into the row, so masked
    entries still index a valid position; an empty row points at 0)."""
    last = (packed.lengths - 1).clamp(min=0).unsqueeze(-1)
    return packed.offsets.unsqueeze(-1) + torch.minimum(positions.clamp(min=0), last)


def packed_seq_params(packed: PackedRows, device):
    """megatron-core's ``PackedSeqParams`` for THD attention over ``packed``."""
    from megatron.core.packed_seq_params import PackedSeqParams

    cu = packed.cu_seqlens.to(device)
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu,
                           max_seqlen_q=packed.max_seqlen, max_seqlen_kv=packed.max_seqlen)


def block_causal_mask(packed: PackedRows) -> torch.Tensor:
    """``[T, T]`` bool, True where query t may attend key u: same segment and u <= t."""
    t = packed.total
    seg = torch.zeros(t, dtype=torch.long)
    for i in range(1, len(packed.cu_seqlens) - 1):
        seg[int(packed.cu_seqlens[i]):] += 1
    idx = torch.arange(t)
    return (seg.unsqueeze(0) == seg.unsqueeze(1)) & (idx.unsqueeze(0) <= idx.unsqueeze(1))
