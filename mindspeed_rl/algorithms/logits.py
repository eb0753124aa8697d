"""Per-token log-probs and entropy from full (not vocab-sharded) logits.

The engine has its own vocab-parallel versions for tensor parallelism; these are the plain ones
(HF models, tests, single-device paths). Both compute in float32 even for bf16 logits.
"""
from __future__ import annotations

import torch


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[label]`` for ``logits [..., vocab]`` and integer ``labels [...]``."""
    logits = logits.float()
    picked = logits.gather(-1, labels.unsqueeze(-1).long()).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy ``-sum_v p_v log p_v`` of ``softmax(logits)`` over the last dim, ``[...]``."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    # -inf logits (masked or padded vocab entries) have p = 0 and must add 0, not 0 * -inf = NaN.
    finite = torch.where(probs > 0, logits, torch.zeros((), dtype=logits.dtype, device=logits.device))
    return torch.logsumexp(logits, dim=-1) - (probs * finite).sum(dim=-1)
