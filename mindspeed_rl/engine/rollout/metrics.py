"""``rollout/logprob_diff``: how far the rollout engine's log-probs are from the trainer's.

A growing gap means the rollout and training engines disagree about the policy (stale weights
after a sync, a mismatched temperature, bf16 vs fp32 numerics, a truncated-distribution log-prob),
which silently biases the GRPO importance ratio.
"""
from __future__ import annotations

import torch


def logprob_diff(
    rollout_logprobs: torch.Tensor,
    recomputed_logprobs: torch.Tensor,
    response_mask: torch.Tensor,
    prefix: str = "rollout/logprob_diff",
) -> dict[str, float]:
    """Mean and max |rollout - recomputed| over the response tokens where ``response_mask`` is set.

    All three tensors are [batch, response_len] (right-padded responses). Returns
    ``{prefix + '_mean': ..., prefix + '_max': ...}``; both 0.0 when the mask is empty.
    """
    if rollout_logprobs.shape != recomputed_logprobs.shape or rollout_logprobs.shape != response_mask.shape:
        raise ValueError(
            "logprob_diff: shapes differ: rollout "
            f"{tuple(rollout_logprobs.shape)}, recomputed {tuple(recomputed_logprobs.shape)}, "
            f"mask {tuple(response_mask.shape)}"
        )
    mask = response_mask.bool()
    diff = (rollout_logprobs.float() - recomputed_logprobs.float()).abs()[mask]
    if diff.numel() == 0:
        return {f"{prefix}_mean": 0.0, f"{prefix}_max": 0.0}
    return {f"{prefix}_mean": float(diff.mean()), f"{prefix}_max": float(diff.max())}


def pad_logprobs(
    sequences: list[list[float]], pad_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-sample log-prob lists into ([B, L] tensor, [B, L] mask)."""
    width = max((len(s) for s in sequences), default=0)
    values = torch.full((len(sequences), width), pad_value, dtype=torch.float32)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for i, s in enumerate(sequences):
        values[i, : len(s)] = torch.tensor(s, dtype=torch.float32)
        mask[i, : len(s)] = True
    return values, mask
