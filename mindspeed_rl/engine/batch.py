"""The engine's batch format and how it is cut into mini- and micro-batches.

A batch is a dict of tensors with ``B`` rows (one sampled response each)::

    input_ids       [B, S] int   prompt tokens then response tokens, right-padded
    attention_mask  [B, S]       1 on prompt + response tokens, 0 on padding
    response_mask   [B, R]       1 on valid response tokens (R = widest response)

and, for ``MegatronEngine.update``, ``[B, R]`` tensors aligned with ``response_mask``:
``advantages`` (required), ``old_log_probs`` and ``ref_log_probs`` (optional); for a critic
``returns`` and ``old_values``. Row ``i``'s
response starts at ``prompt_len_i = attention_mask[i].sum() - response_mask[i].sum()``;
``log_probs[i, j]`` is ``log p(input_ids[i, prompt_len_i + j] | input_ids[i, :prompt_len_i + j])``.

Two ways to cut micro-batches:

* fixed size (``split_micro_batches``): ``micro_batch_size`` rows each, in order, missing rows
  filled with fully masked rows (the loss ignores them exactly); the engine trims each to its own
  longest row and response (``trim_micro_batch``), so a short micro-batch is not padded to the
  call's longest row.
* token budget (``split_by_token_budget``, dynamic batch size): rows sorted by length and cut so
  that each micro-batch's padded size (rows x its own longest row) stays within a budget; each
  micro-batch is trimmed to its own longest row and response width.

Micro-batch shapes differ either way, so with pipeline parallelism the engine turns on Megatron's
``variable_seq_lengths`` (stages exchange shapes first).

Both are exact: the loss is normalised by global counts (``algorithms.compute_loss_normalizers``
over the whole mini-batch and all DP ranks), never per micro-batch.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

Batch = Dict[str, torch.Tensor]
REQUIRED_KEYS = ("input_ids", "attention_mask", "response_mask")
# loss_mask: SFT's mask of the tokens to learn (assistant turns) inside the response span, whose
# response_mask stays contiguous (it locates the span); returns / old_values: a critic's targets
# and its values at experience time (algorithms.value_loss)
RESPONSE_KEYS = ("response_mask", "advantages", "old_log_probs", "ref_log_probs", "loss_mask", "returns", "old_values")


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


def trim_to_longest(batch: Batch, seq_multiple: int = 1) -> Batch:
    """Drop trailing all-padding columns of ``input_ids``/``attention_mask`` (fewer FLOPs),
    keeping the width a multiple of ``seq_multiple`` (TP, when sequence parallelism splits it)."""
    lengths = batch["attention_mask"].long().sum(-1)
    longest = round_up(max(int(lengths.max().item()) if lengths.numel() else 1, 2), seq_multiple)
    out = dict(batch)
    for key in ("input_ids", "attention_mask"):
        v = batch[key][:, :longest]
        if v.shape[1] < longest:
            v = torch.cat([v, v.new_zeros((v.shape[0], longest - v.shape[1]))], dim=1)
        out[key] = v
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


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple if multiple > 1 else value


def token_budget_groups(lengths: Sequence[int], max_tokens: int) -> List[List[int]]:
    """Row indices of micro-batches whose padded size (rows x longest row) is at most ``max_tokens``.

    Rows are taken longest first, so each group's first row is its longest and rows of similar
    length share a micro-batch (least padding). A row longer than the budget forms its own group:
    it cannot be split, and refusing it here would fail a run mid-way (the config check refuses a
    budget below the longest possible row before launch).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens={max_tokens}: the token budget must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    groups: List[List[int]] = []
    for i in order:
        if groups and (len(groups[-1]) + 1) * int(lengths[groups[-1][0]]) <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def trim_micro_batch(mb: Batch, seq_multiple: int = 1) -> Batch:
    """Cut a micro-batch to its own longest row (rounded up to ``seq_multiple``, e.g. TP with
    sequence parallelism) and its own widest response."""
    lengths = mb["attention_mask"].long().sum(-1)
    longest = round_up(max(int(lengths.max().item()) if lengths.numel() else 1, 2), seq_multiple)
    resp = mb["response_mask"].long().sum(-1)
    width = max(int(resp.max().item()) if resp.numel() else 1, 1)
    out = {}
    for k, v in mb.items():
        if k in ("input_ids", "attention_mask"):
            v = v[:, :longest]
            if v.shape[1] < longest:  # sequence-parallel rounding past the batch's own width
                v = torch.cat([v, v.new_zeros((v.shape[0], longest - v.shape[1]))], dim=1)
            out[k] = v
        elif k in RESPONSE_KEYS and isinstance(v, torch.Tensor):
            out[k] = v[:, :width]
        else:
            out[k] = v
    return out


def split_by_token_budget(batch: Batch, max_tokens: int, seq_multiple: int = 1) -> Tuple[List[Batch], List[torch.Tensor]]:
    """Token-budget micro-batches and, for each, the batch rows it holds (to put outputs back).

    An empty batch gives one all-padding micro-batch so that every rank takes part in the
    schedule's collectives.
    """
    n = batch["input_ids"].shape[0]
    if n == 0:
        return [trim_micro_batch(pad_rows(batch, 1), seq_multiple)], [torch.zeros(0, dtype=torch.long)]
    lengths = batch["attention_mask"].long().sum(-1).tolist()
    groups = token_budget_groups(lengths, max_tokens)
    index = [torch.tensor(g, dtype=torch.long) for g in groups]
    return [trim_micro_batch(select_rows(batch, i), seq_multiple) for i in index], index


def padded_token_count(micro: Sequence[Batch]) -> Tuple[int, int]:
    """(tokens computed including padding, real tokens) over micro-batches."""
    computed = sum(int(mb["input_ids"].numel()) for mb in micro)
    real = sum(int(mb["attention_mask"].long().sum()) for mb in micro)
    return computed, real


def balanced_dp_shard_indices(lengths: Sequence[int], dp_size: int, num_mini_batches: int = 1) -> List[torch.Tensor]:
    """Like ``dp_shard_indices`` for every DP rank at once, with each global mini-batch's rows
    dealt so that the ranks get equal row counts and near-equal token counts.

    Global mini-batch ``k`` keeps exactly the rows of ``dp_shard_indices`` (consecutive chunk
    ``k``), so the update's mini-batches and loss are unchanged; only which rank holds which row
    changes (longest rows first, each to the rank with the fewest tokens that still has room).
    """
    shards: List[List[int]] = [[] for _ in range(dp_size)]
    for chunk in torch.tensor_split(torch.arange(len(lengths)), num_mini_batches):
        rows = chunk.tolist()
        caps = [len(part) for part in torch.tensor_split(chunk, dp_size)]
        load = [0] * dp_size
        taken: List[List[int]] = [[] for _ in range(dp_size)]
        for i in sorted(rows, key=lambda r: (-int(lengths[r]), r)):
            rank = min((d for d in range(dp_size) if len(taken[d]) < caps[d]), key=lambda d: (load[d], d))
            taken[rank].append(i)
            load[rank] += int(lengths[i])
        for d in range(dp_size):
            shards[d].extend(sorted(taken[d]))
    return [torch.tensor(s, dtype=torch.long) for s in shards]
