"""Independent, loop-based reference for the GRPO math, written from the papers' definitions.

DeepSeekMath (GRPO): A_i = (r_i - mean(r)) / std(r) over the G responses of one prompt; the
objective averages token terms per response, then over responses (seq-mean-token-mean).
DAPO: clip-higher (separate eps_low / eps_high) and token-level averaging (token-mean).
Dr.GRPO: A_i = r_i - mean(r) and a constant length normaliser (seq-mean-token-sum-norm).
Dual clip (Ye et al. 2020): for A < 0 the clipped surrogate is bounded by -A * c.

Scalar Python/torch ops in loops over sequences and tokens only: nothing here calls the
vectorised code under test.
"""
from __future__ import annotations

import math

import torch


def ref_group_advantages(scores, ids, eps=1e-6, use_std=True):
    out = []
    for i, r in enumerate(scores):
        group = [scores[j] for j in range(len(scores)) if ids[j] == ids[i]]
        n = len(group)
        if n == 1 or all(g == group[0] for g in group):
            out.append(0.0)
            continue
        mean = sum(group) / n
        std = math.sqrt(sum((g - mean) ** 2 for g in group) / (n - 1))
        out.append((r - mean) / (std + eps) if use_std else r - mean)
    return out


def ref_rloo_advantages(scores, ids):
    out = []
    for i, r in enumerate(scores):
        others = [scores[j] for j in range(len(scores)) if ids[j] == ids[i] and j != i]
        out.append(r - sum(others) / len(others) if others else 0.0)
    return out


def ref_token_pg_loss(logp, old, adv, low, high, c=None):
    """One token's clipped surrogate loss and (clipped, clipped_lower) flags; works on torch scalars."""
    ratio = torch.exp(logp - old)
    s1 = -adv * ratio
    s2 = -adv * torch.clamp(ratio, 1 - low, 1 + high)
    loss = torch.maximum(s1, s2)
    clipped = bool(s2 > s1)
    lower = False
    if c is not None and adv < 0:
        bound = -adv * c
        lower = bool(loss > bound)
        loss = torch.minimum(loss, bound)
    return loss, clipped, lower


def ref_kl(logp, ref, kind):
    d = logp - ref
    if kind in ("k1", "kl"):
        return d
    if kind == "abs":
        return d.abs()
    if kind in ("k2", "mse"):
        return 0.5 * d * d
    if kind in ("k3", "low_var_kl"):
        x = torch.clamp(ref - logp, -20, 20)
        return torch.clamp(torch.exp(x) - x - 1, -10, 10)
    raise ValueError(kind)


def ref_aggregate(token_values, mode, norm_length=None):
    """token_values: list (one per sequence) of lists of valid-token scalars (empty rows allowed)."""
    seqs = [row for row in token_values if len(row) > 0]
    if not seqs:
        return torch.tensor(0.0)
    if mode == "token-mean":
        total = sum(sum(row) for row in seqs)
        return total / sum(len(row) for row in seqs)
    if mode == "seq-mean-token-sum":
        return sum(sum(row) for row in seqs) / len(seqs)
    if mode == "seq-mean-token-mean":
        return sum(sum(row) / len(row) for row in seqs) / len(seqs)
    if mode == "seq-mean-token-sum-norm":
        return sum(sum(row) / norm_length for row in seqs) / len(seqs)
    raise ValueError(mode)


def valid_rows(matrix, mask):
    """Per sequence, the list of scalars at valid positions (loop, no masking arithmetic)."""
    rows = []
    for b in range(mask.shape[0]):
        rows.append([matrix[b][t] for t in range(mask.shape[1]) if mask[b, t] > 0])
    return rows


def ref_grpo_loss(logp, old, adv, ref, entropy, mask, *, low, high, c, mode, norm_length,
                  kl_type, kl_coef, ent_coef, policy="vanilla"):
    """Full actor loss over the whole batch, token by token."""
    B, T = mask.shape
    pg_rows, kl_rows, ent_rows = [], [], []
    n_tok = n_clip = n_lower = 0
    ppo_kl = 0.0
    for b in range(B):
        valid = [t for t in range(T) if mask[b, t] > 0]
        if policy == "gspo" and valid:
            seq_lr = sum(logp[b, t] - old[b, t] for t in valid) / len(valid)
        pg_row, kl_row, ent_row = [], [], []
        for t in valid:
            if policy == "gspo":
                # value = sequence ratio, gradient = token's (straight-through on the token log-prob)
                lp_tok = seq_lr.detach() + logp[b, t] - logp[b, t].detach()
                loss, clipped, lower = ref_token_pg_loss(lp_tok, torch.zeros(()), adv[b, t], low, high, c)
            else:
                loss, clipped, lower = ref_token_pg_loss(logp[b, t], old[b, t], adv[b, t], low, high, c)
            pg_row.append(loss)
            n_tok += 1
            n_clip += clipped
            n_lower += lower
            ppo_kl += (old[b, t] - logp[b, t]).item()
            if ref is not None:
                kl_row.append(ref_kl(logp[b, t], ref[b, t], kl_type))
            if entropy is not None:
                ent_row.append(entropy[b, t])
        pg_rows.append(pg_row)
        kl_rows.append(kl_row)
        ent_rows.append(ent_row)
    pg = ref_aggregate(pg_rows, mode, norm_length)
    total = pg
    metrics = {"pg_loss": pg.item(), "pg_clipfrac": n_clip / max(n_tok, 1),
               "pg_clipfrac_lower": n_lower / max(n_tok, 1), "ppo_kl": ppo_kl / max(n_tok, 1)}
    if ref is not None:
        kl = ref_aggregate(kl_rows, mode, norm_length)
        total = total + kl_coef * kl
        metrics["kl_loss"] = kl.item()
    if entropy is not None:
        ent = ref_aggregate(ent_rows, mode, norm_length)
        total = total - ent_coef * ent
        metrics["entropy"] = ent.item()
    return total, metrics
