"""Loss aggregation over the whole global mini-batch, computed micro-batch by micro-batch.

Every aggregation mode is a ratio ``numerator / denominator`` where both are sums over sequences
(or tokens) of the global mini-batch. A micro-batch therefore computes its own numerator and
divides it by the *global* denominator (``LossNormalizers``, counted once from the masks of the
whole mini-batch). The global-batch loss is then exactly the SUM of the micro-batch losses over
all micro-batches and all data-parallel ranks, whatever the micro-batch size, the number of
micro-batches or the DP size:

* gradient accumulation over micro-batches must SUM (no division by the number of micro-batches);
* the DP gradient all-reduce must SUM. A DDP that AVERAGES over DP ranks (Megatron's default,
  torch DDP) divides by ``dp_size``: pass ``loss_scale=dp_size`` to ``compute_grpo_loss`` (and
  multiply by ``num_microbatches`` too if the pipeline schedule divides the loss by it).

Modes (``m`` the response mask, ``l`` the per-token loss, ``i`` a sequence with >= 1 valid token):

* ``token-mean``: ``sum_{i,t} m l / sum_{i,t} m`` (DAPO; every token weighs the same).
* ``seq-mean-token-sum``: ``(1/N) sum_i sum_t m l``.
* ``seq-mean-token-mean``: ``(1/N) sum_i (sum_t m l / sum_t m)`` (the original GRPO objective).
* ``seq-mean-token-sum-norm``: ``(1/N) sum_i sum_t m l / L`` with a constant ``L`` (Dr.GRPO; set
  ``L`` = the max response length so it does not change with padding).

``N`` counts sequences with at least one valid token: fully masked rows (padding rows a DP rank adds
when it has fewer samples than a micro-batch) contribute nothing to numerators or denominators.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def check_agg_mode(mode: str) -> None:
    if mode not in AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {mode!r} (config key `rl_config.loss_agg_mode`); "
                         f"choose one of: {', '.join(AGG_MODES)}")


@dataclass(frozen=True)
class LossNormalizers:
    """Global denominators of one mini-batch (all its micro-batches on all DP ranks)."""

    num_tokens: float  # valid response tokens in the global mini-batch
    num_seqs: float  # sequences with at least one valid response token in the global mini-batch
    norm_length: float  # the constant L of seq-mean-token-sum-norm

    def denominator(self, mode: str) -> float:
        """The global denominator of ``mode``."""
        check_agg_mode(mode)
        return self.num_tokens if mode == "token-mean" else self.num_seqs

    def __add__(self, other: "LossNormalizers") -> "LossNormalizers":
        """Combine counts of disjoint parts of a mini-batch (e.g. per DP rank); L is the max of both."""
        return LossNormalizers(self.num_tokens + other.num_tokens, self.num_seqs + other.num_seqs,
                               max(self.norm_length, other.norm_length))

    def to_tensor(self, device: torch.device | None = None) -> torch.Tensor:
        """``[num_tokens, num_seqs]`` as float64, e.g. to all-reduce (SUM) the local counts of DP ranks."""
        return torch.tensor([self.num_tokens, self.num_seqs], dtype=torch.float64, device=device)

    @classmethod
    def from_tensor(cls, counts: torch.Tensor, norm_length: float) -> "LossNormalizers":
        return cls(float(counts[0]), float(counts[1]), float(norm_length))


def compute_loss_normalizers(response_masks: Union[torch.Tensor, Sequence[torch.Tensor]],
                             norm_length: Optional[int] = None) -> LossNormalizers:
    """Count the global denominators from the response masks of a whole mini-batch.

    ``response_masks`` is the mini-batch's ``[batch, response_len]`` mask or a list of such masks
    (micro-batches or DP shards, possibly padded to different widths). ``norm_length`` is
    seq-mean-token-sum-norm's ``L``; when None it is the widest mask (pass the configured max
    response length instead so that ``L`` does not depend on how the batch was padded).
    """
    masks = [response_masks] if isinstance(response_masks, torch.Tensor) else list(response_masks)
    if not masks:
        raise ValueError("compute_loss_normalizers needs at least one response mask")
    num_tokens = num_seqs = 0.0
    width = 0
    for mask in masks:
        if mask.dim() != 2:
            raise ValueError(f"response masks must be [batch, response_len], got shape {tuple(mask.shape)}")
        m = mask.bool()
        num_tokens += float(m.sum().item())
        num_seqs += float(m.any(dim=-1).sum().item())
        width = max(width, mask.shape[-1])
    if norm_length is not None and norm_length <= 0:
        raise ValueError(f"norm_length (seq-mean-token-sum-norm's L) must be > 0, got {norm_length}")
    return LossNormalizers(num_tokens, num_seqs, float(norm_length if norm_length is not None else max(width, 1)))


def aggregate_parts(values: torch.Tensor, response_mask: torch.Tensor, mode: str,
                    norm_length: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """This micro-batch's (numerator, denominator) of ``mode``; both are additive across micro-batches.

    Masked positions are selected away (not multiplied), so NaN/inf there cannot leak into the loss.
    """
    check_agg_mode(mode)
    if values.shape != response_mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and response_mask {tuple(response_mask.shape)} differ")
    m = response_mask.bool()
    masked = torch.where(m, values, torch.zeros((), dtype=values.dtype, device=values.device))
    tokens_per_seq = m.sum(dim=-1)
    if mode == "token-mean":
        return masked.sum(), tokens_per_seq.sum().to(values.dtype)
    seq_valid = (tokens_per_seq > 0).to(values.dtype).sum()
    seq_sum = masked.sum(dim=-1)
    if mode == "seq-mean-token-sum":
        num = seq_sum.sum()
    elif mode == "seq-mean-token-mean":
        num = (seq_sum / tokens_per_seq.clamp(min=1).to(values.dtype)).sum()
    else:  # seq-mean-token-sum-norm
        num = seq_sum.sum() / norm_length
    return num, seq_valid


def aggregate_loss(values: torch.Tensor, response_mask: torch.Tensor, mode: str,
                   normalizers: Optional[LossNormalizers] = None) -> torch.Tensor:
    """This micro-batch's share of the global-batch aggregate of ``values``.

    With ``normalizers=None`` the micro-batch is taken to be the whole global batch.
    An empty global batch gives 0 (with zero gradients), never NaN.
    """
    if normalizers is None:
        normalizers = compute_loss_normalizers(response_mask)
    num, _ = aggregate_parts(values, response_mask, mode, normalizers.norm_length)
    return num / max(normalizers.denominator(mode), 1.0)
