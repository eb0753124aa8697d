"""The engine's batch format and how it is cut into mini- and micro-batches.

A batch is a dict of tensors with ``B`` rows (one sampled response each)::

    input_ids       [B, S] int   prompt tokens then response tokens, right-padded
    attention_mask  [B, S]       1 on prompt + response tokens, 0 on padding
    response_mask   [B, R]       1 on valid response tokens (R = widest response)

and, for ``MegatronEngine.update``, ``[B, R]`` tensors aligned with ``response_mask``:
``advantages`` (required), ``old_log_probs`` and ``ref_log_probs`` (optional). Row ``i``'s
response starts at ``prompt_len_i = attention_mask[i].sum() - response_mask[i].sum()``;
``log_probs[i, j]`` is ``log p(input_ids[i, prompt_len_i + j] | input_ids[i, :prompt_len_i + j])``.

Micro-batches all have the same shape ``[micro_batch_size, S']`` (the pipeline schedule sends
fixed-shape activations between stages): ``S'`` is the longest sequence of the whole call and
missing rows are filled with fully masked padding rows, which the loss ignores exactly.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch

Batch = Dict[str, torch.Tensor]
REQUIRED_KEYS = ("input_ids", "attention_mask", "response_mask")
RESPONSE_KEYS = ("response_mask", "advantages", "old_log_probs", "ref_log_probs")


def check_batch(batch: Batch, required: tuple[str, ...] = REQUIRED_KEYS) -> None:
    missing = [k for k in required if k not in batch]
    if missing:
        raise KeyError(f"batch is missing {missing}; the engine batch format is described in mindspeed_rl.engine.batch")
    b, s = batch["input_ids"].shape
    if batch["attention_mask"].shape != (b, s):
        raise ValueError(f"attention_mask {tuple(batch['attention_mask'].shape)} != input_ids {(b, s)}")
    r = batch["response_mask"].shape
    if r[0] != b:
        raise ValueError(f"response_mask has {r[0]} rows, input_ids {b}")
    for key in RESPONSE_KEYS:
        if key in batch and batch[key] is not None and batch[key].shape != r:
            raise ValueError(f"{key} {tuple(batch[key].shape)} must match response_mask {tuple(r)}")
    lengths = batch["attention_mask"].long().sum(-1)
    resp = batch["response_mask"].long().sum(-1)
    if bool((resp > lengths).any()):
        raise ValueError("a row has more response tokens than attended tokens; response_mask and attention_mask disagree")


def response_positions(attention_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """``[B, R]`` index of the logit position that predicts each response token (prompt_len - 1 + j).

    Clamped into ``[0, S - 2]`` so that masked entries still index something valid.
    """
    seq = attention_mask.shape[1]
    prompt_len = attention_mask.long().sum(-1) - response_mask.long().sum(-1)
    j = torch.arange(response_mask.shape[1], device=response_mask.device)
    return (prompt_len.unsqueeze(-1) - 1 + j).clamp(0, max(seq - 2, 0))


def trim_to_longest(batch: Batch, multiple: int = 1) -> Batch:
    """Drop trailing all-padding columns of ``input_ids``/``attention_mask`` (fewer FLOPs), keeping
    the width a multiple of ``multiple`` (sequence parallelism splits the sequence over TP ranks)."""
    lengths = batch["attention_mask"].long().sum(-1)
    longest = max(int(lengths.max().item()) if lengths.numel() else 1, 2)
    width = -(-longest // multiple) * multiple
    out = dict(batch)
    for key in ("input_ids", "attention_mask"):
        t = batch[key][:, :width]
        if t.shape[1] < width:  # masked zero columns, as right padding is
            t = torch.cat([t, t.new_zeros((t.shape[0], width - t.shape[1]))], dim=1)
        out[key] = t
    return out


def select_rows(batch: Batch, index: torch.Tensor) -> Batch:
    return {k: (v[index] if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in batch.items()}


def pad_rows(batch: Batch, rows: int) -> Batch:
    """Append fully masked rows up to ``rows`` (zeros: masks 0, token id 0)."""
    n = batch["input_ids"].shape[0]
    if n >= rows:
        return batch
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            out[k] = torch.cat([v, v.new_zeros((rows - n, *v.shape[1:]))], dim=0)
        else:
            out[k] = v
    return out


def split_micro_batches(batch: Batch, micro_batch_size: int) -> List[Batch]:
    """Equal-shape micro-batches of ``micro_batch_size`` rows (the last padded with masked rows).

    An empty batch still gives one all-padding micro-batch so that every rank takes part in the
    schedule's collectives.
    """
    n = batch["input_ids"].shape[0]
    count = max(1, -(-n // micro_batch_size))
    padded = pad_rows(batch, count * micro_batch_size)
    return [select_rows(padded, torch.arange(i * micro_batch_size, (i + 1) * micro_batch_size))
            for i in range(count)]


def mini_batch_indices(num_rows: int, num_mini_batches: int,
                       generator: Optional[torch.Generator] = None) -> List[torch.Tensor]:
    """Row indices of each mini-batch: ``num_mini_batches`` consecutive near-equal chunks
    (of a permutation when ``generator`` is given)."""
    order = torch.randperm(num_rows, generator=generator) if generator is not None else torch.arange(num_rows)
    return list(torch.tensor_split(order, num_mini_batches))


def dp_shard_indices(num_rows: int, dp_size: int, dp_rank: int, num_mini_batches: int = 1) -> torch.Tensor:
    """Rows of a global batch that DP rank ``dp_rank`` gets so that global mini-batch ``k`` (the
    ``num_rows / num_mini_batches`` consecutive rows from ``k * num_rows / num_mini_batches``) is
    the union of the ranks' local mini-batch ``k``. For the trainer's dispatch."""
    out = []
    for chunk in torch.tensor_split(torch.arange(num_rows), num_mini_batches):
        out.append(torch.tensor_split(chunk, dp_size)[dp_rank])
    return torch.cat(out)
