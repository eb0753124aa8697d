"""Group-relative advantage estimators (GRPO, Dr.GRPO, RLOO).

Every estimator takes the rewards of a batch of responses, their response mask and the prompt id
of each response, and returns per-token advantages ``[batch, response_len]`` that are zero on
masked tokens. Responses are grouped by prompt id, in any order: the rows of one prompt need not
be adjacent and groups may have different sizes.
"""
from __future__ import annotations

from typing import Hashable, Sequence, Union

import torch

from .registry import ADVANTAGE_ESTIMATORS

GroupIndex = Union[torch.Tensor, Sequence[Hashable]]


def group_ids(group_index: GroupIndex, batch_size: int, device: torch.device | None = None) -> tuple[torch.Tensor, int]:
    """Map arbitrary prompt ids (tensor of ints, or any hashables such as uid strings) to 0..G-1."""
    if isinstance(group_index, torch.Tensor):
        if group_index.dim() != 1:
            raise ValueError(f"group_index must be 1-D, got shape {tuple(group_index.shape)}")
        _, ids = torch.unique(group_index, return_inverse=True)
        ids = ids.to(device=device, dtype=torch.long)
    else:
        table: dict = {}
        ids = torch.tensor([table.setdefault(key, len(table)) for key in group_index], dtype=torch.long, device=device)
    if ids.numel() != batch_size:
        raise ValueError(f"group_index has {ids.numel()} entries but the batch has {batch_size} responses")
    num_groups = int(ids.max().item()) + 1 if ids.numel() else 0
    return ids, num_groups


def sequence_scores(rewards: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Sequence-level score: ``rewards`` itself if 1-D, else the masked sum of token-level rewards."""
    if rewards.dim() == 1:
        return rewards
    if rewards.shape != response_mask.shape:
        raise ValueError(f"token-level rewards {tuple(rewards.shape)} and response_mask {tuple(response_mask.shape)} differ")
    return (rewards * response_mask).sum(dim=-1)


def _group_stats(scores: torch.Tensor, ids: torch.Tensor, num_groups: int):
    """Per-group count, mean, unbiased std and a flag for groups whose scores are all equal."""
    zeros = scores.new_zeros(num_groups)
    counts = zeros.index_add(0, ids, torch.ones_like(scores))
    mean = zeros.index_add(0, ids, scores) / counts
    dev = scores - mean[ids]
    var = zeros.index_add(0, ids, dev * dev) / (counts - 1).clamp(min=1)
    gmax = zeros.scatter_reduce(0, ids, scores, reduce="amax", include_self=False)
    gmin = zeros.scatter_reduce(0, ids, scores, reduce="amin", include_self=False)
    constant = gmax == gmin  # also true for groups of one
    # Rounding in the mean must not leak a tiny non-zero advantage into a constant group.
    dev = torch.where(constant[ids], torch.zeros_like(dev), dev)
    return counts, dev, var.sqrt()


def _prepare(rewards, response_mask, group_index):
    if response_mask.dim() != 2:
        raise ValueError(f"response_mask must be [batch, response_len], got shape {tuple(response_mask.shape)}")
    mask = response_mask.to(torch.float64)
    scores = sequence_scores(rewards.to(torch.float64), mask)
    if scores.shape != (mask.shape[0],):
        raise ValueError(f"rewards give {tuple(scores.shape)} scores for a batch of {mask.shape[0]} responses")
    ids, num_groups = group_ids(group_index, mask.shape[0], device=scores.device)
    return scores, mask, ids, num_groups


def _broadcast(seq_adv: torch.Tensor, mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    out_dtype = like.dtype if like.is_floating_point() and like.dtype != torch.float64 else torch.float32
    return (seq_adv.unsqueeze(-1) * mask).to(out_dtype)


@ADVANTAGE_ESTIMATORS.register("grpo")
def grpo_advantages(rewards: torch.Tensor, response_mask: torch.Tensor, group_index: GroupIndex,
                    *, epsilon: float = 1e-6, norm_by_std: bool = True) -> torch.Tensor:
    """GRPO outcome advantage (DeepSeekMath eq. 3 style): ``(r - mean_group) / (std_group + epsilon)``.

    ``std`` is the unbiased (n-1) standard deviation of the group. A group whose rewards are all
    equal, and a group of one response, get advantage exactly zero (no relative signal).
    With ``norm_by_std=False`` this is Dr.GRPO's ``r - mean_group``.
    """
    scores, mask, ids, num_groups = _prepare(rewards, response_mask, group_index)
    _, dev, std = _group_stats(scores, ids, num_groups)
    adv = dev / (std[ids] + epsilon) if norm_by_std else dev
    return _broadcast(adv, mask, rewards)


@ADVANTAGE_ESTIMATORS.register("dr_grpo")
def dr_grpo_advantages(rewards: torch.Tensor, response_mask: torch.Tensor, group_index: GroupIndex,
                       *, epsilon: float = 1e-6) -> torch.Tensor:
    """Dr.GRPO (Liu et al. 2025): ``r - mean_group`` without the std division (removes difficulty bias)."""
    return grpo_advantages(rewards, response_mask, group_index, epsilon=epsilon, norm_by_std=False)


@ADVANTAGE_ESTIMATORS.register("rloo")
def rloo_advantages(rewards: torch.Tensor, response_mask: torch.Tensor, group_index: GroupIndex,
                    *, epsilon: float = 1e-6) -> torch.Tensor:
    """RLOO: ``r_i - mean_{j != i} r_j`` = ``n/(n-1) (r_i - mean)``; zero for a group of one."""
    scores, mask, ids, num_groups = _prepare(rewards, response_mask, group_index)
    counts, dev, _ = _group_stats(scores, ids, num_groups)
    n = counts[ids]
    adv = torch.where(n > 1, dev * n / (n - 1).clamp(min=1), torch.zeros_like(dev))
    return _broadcast(adv, mask, rewards)


def compute_advantages(name: str, rewards: torch.Tensor, response_mask: torch.Tensor, group_index: GroupIndex,
                       *, epsilon: float = 1e-6) -> torch.Tensor:
    """Run the registered estimator ``name`` (config ``rl_config.advantage_estimator``).

    Every registered estimator has the signature ``fn(rewards, response_mask, group_index, *, epsilon)``;
    ``rewards`` is ``[batch]`` (sequence scores) or ``[batch, response_len]`` (token-level rewards,
    e.g. after the KL-in-reward penalty, summed over valid tokens into the sequence score).
    """
    fn = ADVANTAGE_ESTIMATORS.get(name)
    return fn(rewards, response_mask, group_index, epsilon=epsilon)
