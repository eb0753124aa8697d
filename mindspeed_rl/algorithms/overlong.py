"""DAPO's overlong reward shaping (Yu et al. 2025, eq. 13): a soft, linear length penalty.

With ``L_max`` the generation limit (``sampling_config.max_tokens``) and ``L_cache`` the buffer
(``overlong_buffer_len``), a response of ``|y|`` tokens gets

    0                                   if |y| <= L_max - L_cache
    ((L_max - L_cache) - |y|) / L_cache  if L_max - L_cache < |y| <= L_max
    -1                                  if |y| > L_max

times ``overlong_penalty_factor``, added to its rule-based reward. The rollout never returns more
than ``L_max`` tokens, so the penalty ends at ``-factor`` for a response that hits the limit.
``|y|`` counts every generated token, the stop token included (what the limit counts).
"""
from __future__ import annotations

from typing import Sequence


def overlong_penalty(length: int, max_len: int, buffer_len: int, factor: float = 1.0) -> float:
    """The (non-positive) penalty of one response of ``length`` tokens."""
    if buffer_len <= 0 or buffer_len > max_len:
        raise ValueError(f"overlong buffer_len={buffer_len} must be in [1, max_len={max_len}] "
                         "(config key rl_config.overlong_buffer_len)")
    expected = max_len - buffer_len
    if length <= expected:
        return 0.0
    if length > max_len:
        return -float(factor)
    return (expected - length) / buffer_len * float(factor)


def overlong_penalties(lengths: Sequence[int], max_len: int, buffer_len: int, factor: float = 1.0) -> list[float]:
    return [overlong_penalty(int(n), max_len, buffer_len, factor) for n in lengths]


def mask_truncated(response_mask, finish_reasons: Sequence[str]):
    """``response_mask`` with the rows of truncated responses (finish reason ``length``) zeroed:
    fully masked rows add nothing to any loss numerator or denominator (DAPO's overlong filtering)."""
    import torch

    keep = torch.tensor([reason != "length" for reason in finish_reasons], dtype=response_mask.dtype)
    return response_mask * keep.unsqueeze(-1)
