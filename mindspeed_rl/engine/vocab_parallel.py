"""Log-probs and entropy from vocab-sharded logits (tensor parallelism), never gathering the vocab.

Each TP rank holds logits for a contiguous slice ``[vocab_start, vocab_start + local_vocab)`` of the
(padded) vocabulary. Log-softmax needs three reductions across the TP group: the max (for
stability), the sum of exponentials, and the logit of the label (found on exactly one rank). The
autograd function below does those reductions and writes its own backward, so only the local
softmax (and, with entropy, the local logits) is kept for backward, like Megatron's
``vocab_parallel_cross_entropy``.

Columns at or past ``true_vocab`` (Megatron pads the vocab to a multiple of 128 * TP with zero
rows, whose logits are 0, not -inf) are excluded: their probability is exactly 0.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist


def _all_reduce(t: torch.Tensor, op, group) -> torch.Tensor:
    if group is not None and dist.get_world_size(group) > 1:
        dist.all_reduce(t, op=op, group=group)
    return t


class _VocabParallelLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, vocab_start, true_vocab, group, with_entropy):
        local_vocab = logits.shape[-1]
        z = logits.float()
        cols = torch.arange(vocab_start, vocab_start + local_vocab, device=z.device)
        valid_cols = cols < true_vocab
        if not bool(valid_cols.all()):
            z = z.masked_fill(~valid_cols, float("-inf"))
        zmax = z.max(dim=-1).values
        # A shard made only of padding columns has max -inf; it must not win the max.
        zmax = _all_reduce(torch.where(torch.isfinite(zmax), zmax, torch.full_like(zmax, -1e30)),
                           dist.ReduceOp.MAX, group)
        shifted = z - zmax.unsqueeze(-1)
        exp = shifted.exp()
        sum_exp = _all_reduce(exp.sum(dim=-1), dist.ReduceOp.SUM, group)

        local_label = labels.long() - vocab_start
        on_rank = (local_label >= 0) & (local_label < local_vocab)
        safe = torch.where(on_rank, local_label, torch.zeros_like(local_label))
        picked = shifted.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        picked = _all_reduce(torch.where(on_rank, picked, torch.zeros_like(picked)), dist.ReduceOp.SUM, group)
        log_z = sum_exp.log()
        log_prob = picked - log_z

        probs = exp.div_(sum_exp.unsqueeze(-1))  # in place: exp is not needed any more
        entropy = None
        if with_entropy:
            finite = torch.where(probs > 0, shifted, torch.zeros((), dtype=shifted.dtype, device=shifted.device))
            expected_z = _all_reduce((probs * finite).sum(dim=-1), dist.ReduceOp.SUM, group)
            entropy = log_z - expected_z
            ctx.save_for_backward(probs, safe, on_rank, finite, expected_z)
        else:
            ctx.save_for_backward(probs, safe, on_rank)
        ctx.with_entropy = with_entropy
        ctx.in_dtype = logits.dtype
        if entropy is None:
            return log_prob, log_prob.new_zeros(())
        return log_prob, entropy

    @staticmethod
    def backward(ctx, grad_log_prob, grad_entropy):
        if ctx.with_entropy:
            probs, safe, on_rank, finite, expected_z = ctx.saved_tensors
        else:
            probs, safe, on_rank = ctx.saved_tensors
        # d log p_y / d z_v = 1[v == y] - p_v
        grad = probs * (-grad_log_prob.unsqueeze(-1))
        onehot = torch.zeros_like(grad).scatter_(-1, safe.unsqueeze(-1), on_rank.unsqueeze(-1).to(grad.dtype))
        grad.add_(onehot * grad_log_prob.unsqueeze(-1))
        if ctx.with_entropy:
            # d H / d z_v = -p_v (z_v - E_p[z])
            grad.sub_(probs * (finite - expected_z.unsqueeze(-1)) * grad_entropy.unsqueeze(-1))
        return grad.to(ctx.in_dtype), None, None, None, None, None


def vocab_parallel_log_probs(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    vocab_start: int = 0,
    true_vocab: Optional[int] = None,
    group=None,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(log p(label), entropy or None)`` per position from this rank's vocab shard ``[..., local_vocab]``.

    ``labels`` are global vocabulary ids ``[...]``; ``group`` is the tensor-parallel group (None or
    a group of one: plain log-softmax). Results are float32 and identical on every TP rank.
    Gradients flow into ``logits`` for both outputs.
    """
    true_vocab = vocab_start + logits.shape[-1] if true_vocab is None else true_vocab
    log_prob, entropy = _VocabParallelLogProbs.apply(logits, labels, vocab_start, true_vocab, group, with_entropy)
    return log_prob, (entropy if with_entropy else None)
