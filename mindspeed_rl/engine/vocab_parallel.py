"""Log-probs and entropy from vocab-sharded logits (tensor parallelism), never gathering the vocab.

Each TP rank holds logits for a contiguous slice ``[vocab_start, vocab_start + local_vocab)`` of the
(padded) vocabulary. Log-softmax needs three reductions across the TP group: the max (for
stability), the sum of exponentials, and the logit of the label (found on exactly one rank). The
autograd function below does those reductions and writes its own backward, so only the local
softmax (and, with entropy, the local logits) is kept for backward, like Megatron's
``vocab_parallel_cross_entropy``.

Memory: the logits are read in their own dtype (bf16 stays bf16) and processed in row chunks of
about ``chunk_elements`` values, each upcast to float32 on its own; the backward recomputes each
chunk's softmax from the saved logits and the per-row max and log-normaliser. So neither pass
holds a float32 ``[rows, vocab]`` copy: the peak is the logits, their gradient and one chunk.
The float32 arithmetic per row is the one of a plain float32 log-softmax.

Label smoothing needs one more per-row value, the mean log-prob over the true vocabulary
(``mean_v log p_v = mean_v (z_v - max) - log Z``): a fourth per-row sum, all-reduced with the
others, so it too never gathers the vocab (``vocab_parallel_log_prob_stats``).

Columns at or past ``true_vocab`` (Megatron pads the vocab to a multiple of 128 * TP with zero
rows, whose logits are 0, not -inf) are excluded: they are a suffix of the last shard(s), sliced off
(a view, no masking pass); their probability and gradient are exactly 0. The backward writes
``-p * grad`` in place in the chunk's one float32 buffer and adds the label's term with a
``scatter_add`` (no one-hot).
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
import torch.distributed as dist


def _all_reduce(t: torch.Tensor, op, group) -> torch.Tensor:
    if group is not None and dist.get_world_size(group) > 1:
        dist.all_reduce(t, op=op, group=group)
    return t


CHUNK_ELEMENTS = 1 << 22  # float32 values per chunk (16 MiB): a few chunk-sized temporaries at a time


def _chunks(rows: int, width: int, chunk_elements: int):
    step = max(1, chunk_elements // max(width, 1))
    return [(s, min(s + step, rows)) for s in range(0, rows, step)]


class _VocabParallelLogProbs(torch.autograd.Function):
    @staticmethod
    def _z(x, start, end, temperature):
        """float32 logits of rows [start, end) of the valid columns ``x``, divided by the temperature."""
        z = x[start:end].to(torch.float32, copy=True)  # a copy even for float32: the ops below are in place
        if temperature != 1.0:
            z.div_(temperature)
        return z

    @staticmethod
    def forward(ctx, logits, labels, vocab_start, true_vocab, group, with_entropy, temperature, chunk_elements,
                with_mean=False):
        shape, local_vocab = logits.shape[:-1], logits.shape[-1]
        x_all = logits.reshape(-1, local_vocab)
        rows = x_all.shape[0]
        # The padding columns are a suffix of the shard: slice them off (a view) instead of masking
        # them to -inf in every chunk; their probability, and gradient, is exactly 0.
        valid = max(0, min(local_vocab, true_vocab - vocab_start))
        x = x_all[:, :valid]
        chunks = _chunks(rows, max(valid, 1), chunk_elements)
        z_of = functools.partial(_VocabParallelLogProbs._z, x, temperature=temperature)

        # max(x / T) = max(x) / T exactly (division by T > 0 is monotone, rounding too): no copy needed.
        # A shard made only of padding columns must not win the max.
        zmax = torch.full((rows,), -1e30, dtype=torch.float32, device=x.device)
        if valid:
            for s, e in chunks:
                zmax[s:e] = x[s:e].amax(dim=-1).float()
            if temperature != 1.0:
                zmax.div_(temperature)
        zmax = _all_reduce(zmax, dist.ReduceOp.MAX, group)

        local_label = labels.reshape(-1).long() - vocab_start
        on_rank = (local_label >= 0) & (local_label < valid)
        safe = torch.where(on_rank, local_label, torch.zeros_like(local_label))
        # per row: sum exp(z - max), z_label - max (on its rank, else 0), sum exp(z - max) (z - max),
        # sum over the true vocab of (z - max) (label smoothing's mean log-prob)
        sums = torch.zeros(rows, 4, dtype=torch.float32, device=x.device)
        for s, e in (chunks if valid else ()):
            shifted = z_of(s, e).sub_(zmax[s:e].unsqueeze(-1))
            picked = shifted.gather(-1, safe[s:e].unsqueeze(-1)).squeeze(-1)
            sums[s:e, 1] = torch.where(on_rank[s:e], picked, torch.zeros_like(picked))
            if with_mean:
                sums[s:e, 3] = shifted.sum(dim=-1)
            exp = shifted.exp()
            sums[s:e, 0] = exp.sum(dim=-1)
            if with_entropy:  # every column is finite here: no 0 * -inf
                sums[s:e, 2] = exp.mul_(shifted).sum(dim=-1)
            del shifted, exp  # before the next chunk's copy: one chunk's temporaries alive at a time
        sums = _all_reduce(sums, dist.ReduceOp.SUM, group)
        log_z = sums[:, 0].log()
        log_prob = sums[:, 1] - log_z
        ctx.temperature, ctx.chunk_elements, ctx.valid = temperature, chunk_elements, valid
        ctx.with_entropy, ctx.with_mean, ctx.true_vocab = with_entropy, with_mean, true_vocab
        ctx.shape = shape
        # zmax is the same on every rank, so the shards' sums of (z - max) add up to the true vocab's
        mean = (sums[:, 3] / true_vocab - log_z).reshape(shape) if with_mean else log_prob.new_zeros(())
        if with_entropy:
            expected_z = sums[:, 2] / sums[:, 0]  # E_p[z - max]
            entropy = log_z - expected_z
            ctx.save_for_backward(logits, safe, on_rank, zmax, log_z, expected_z)
            return log_prob.reshape(shape), entropy.reshape(shape), mean
        ctx.save_for_backward(logits, safe, on_rank, zmax, log_z)
        return log_prob.reshape(shape), log_prob.new_zeros(()), mean

    @staticmethod
    def backward(ctx, grad_log_prob, grad_entropy, grad_mean):
        if ctx.with_entropy:
            logits, safe, on_rank, zmax, log_z, expected_z = ctx.saved_tensors
        else:
            (logits, safe, on_rank, zmax, log_z), expected_z = ctx.saved_tensors, None
        local_vocab, valid = logits.shape[-1], ctx.valid
        x = logits.reshape(-1, local_vocab)[:, :valid]
        glp = grad_log_prob.reshape(-1).float()
        gent = grad_entropy.reshape(-1).float() if ctx.with_entropy else None
        # d mean_v log p_v / d z_u = 1/V - p_u: the -p part joins glp's, the 1/V part is added per row
        gmean = grad_mean.reshape(-1).float() if ctx.with_mean else None
        gp = glp + gmean if gmean is not None else glp  # the coefficient of -p
        grad = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device).view(-1, local_vocab)
        grad[:, valid:] = 0  # padding columns: probability 0, gradient 0
        label_grad = on_rank.float() * glp  # d log p_y / d z_y's "1" term, on the label's rank only
        z_of = functools.partial(_VocabParallelLogProbs._z, x, temperature=ctx.temperature)
        for s, e in (_chunks(x.shape[0], valid, ctx.chunk_elements) if valid else ()):
            z = z_of(s, e).sub_(zmax[s:e].unsqueeze(-1))  # z - max, float32 copy of the chunk
            if gent is None:
                # d log p_y / d z_v = 1[v == y] - p_v: g = -p * glp, in place in the chunk's one buffer
                g = z.sub_(log_z[s:e].unsqueeze(-1)).exp_().mul_(-gp[s:e].unsqueeze(-1))
            else:
                # + d H / d z_v = -p_v (z_v - E_p[z]):  g = -p * (glp + gent * (z - E_p[z]))
                probs = (z - log_z[s:e].unsqueeze(-1)).exp_()
                g = z.sub_(expected_z[s:e].unsqueeze(-1)).mul_(gent[s:e].unsqueeze(-1))
                g = g.add_(gp[s:e].unsqueeze(-1)).mul_(probs).neg_()
                del probs
            g.scatter_add_(-1, safe[s:e].unsqueeze(-1), label_grad[s:e].unsqueeze(-1))  # no one-hot
            if gmean is not None:
                g.add_((gmean[s:e] / ctx.true_vocab).unsqueeze(-1))
            if ctx.temperature != 1.0:
                g.div_(ctx.temperature)
            grad[s:e, :valid] = g
            del z, g
        return grad.view(logits.shape), None, None, None, None, None, None, None, None


def vocab_parallel_log_probs(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    vocab_start: int = 0,
    true_vocab: Optional[int] = None,
    group=None,
    with_entropy: bool = False,
    temperature: float = 1.0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(log p(label), entropy or None)`` per position from this rank's vocab shard ``[..., local_vocab]``
    under ``softmax(logits / temperature)``.

    ``labels`` are global vocabulary ids ``[...]``; ``group`` is the tensor-parallel group (None or
    a group of one: plain log-softmax). Results are float32 and identical on every TP rank; the
    logits may be bf16/fp16 (never copied whole to float32, see the module doc). Gradients flow
    into ``logits`` (in their dtype) for both outputs.
    """
    log_prob, entropy, _ = vocab_parallel_log_prob_stats(
        logits, labels, vocab_start=vocab_start, true_vocab=true_vocab, group=group, with_entropy=with_entropy,
        temperature=temperature, chunk_elements=chunk_elements)
    return log_prob, entropy


def vocab_parallel_log_prob_stats(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    vocab_start: int = 0,
    true_vocab: Optional[int] = None,
    group=None,
    with_entropy: bool = False,
    with_mean_log_prob: bool = False,
    temperature: float = 1.0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``vocab_parallel_log_probs`` plus, with ``with_mean_log_prob``, the mean over the true
    vocabulary of ``log p_v`` per position (label smoothing: ``-mean`` is its uniform term), with
    gradients; ``(log_prob, entropy or None, mean_log_prob or None)``."""
    true_vocab = vocab_start + logits.shape[-1] if true_vocab is None else true_vocab
    if labels.numel() and int(labels.max()) >= true_vocab:  # a padding column is never a real token
        raise ValueError(f"label id {int(labels.max())} >= the true vocabulary size {true_vocab}: the labels come "
                         "from another tokenizer than the model's (check tokenizer_name_or_path against the model)")
    log_prob, entropy, mean = _VocabParallelLogProbs.apply(logits, labels, vocab_start, true_vocab, group, with_entropy,
                                                           float(temperature), int(chunk_elements),
                                                           bool(with_mean_log_prob))
    return log_prob, (entropy if with_entropy else None), (mean if with_mean_log_prob else None)
