"""Per-token log-probs and entropy from full (not vocab-sharded) logits.

The engine has its own vocab-parallel kernel for tensor parallelism; these are the plain ones (HF
models, tests, single-device paths). Both compute in float32 even for bf16 logits, but chunk by
chunk of rows: the logits stay in their dtype and no float32 ``[..., vocab]`` copy is held (the
backward recomputes each chunk's softmax from the saved logits and log-normaliser).
"""
from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 22  # float32 values per chunk


def _chunks(rows: int, width: int):
    step = max(1, CHUNK_ELEMENTS // max(width, 1))
    return [(s, min(s + step, rows)) for s in range(0, rows, step)]


def _finite(z: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    # -inf logits (masked or padded vocab entries) have p = 0 and must add 0, not 0 * -inf = NaN.
    return torch.where(probs > 0, z, torch.zeros((), dtype=z.dtype, device=z.device))


class _ChunkedLogSoftmax(torch.autograd.Function):
    """``(log p(label) or None, entropy or None)`` of ``softmax(x)`` row by row, x ``[rows, vocab]``."""

    @staticmethod
    def forward(ctx, x, labels, want_entropy):
        rows = x.shape[0]
        lse = torch.empty(rows, dtype=torch.float32, device=x.device)
        lp = torch.zeros(rows, dtype=torch.float32, device=x.device)
        ent = torch.zeros(rows, dtype=torch.float32, device=x.device)
        expected = torch.zeros(rows, dtype=torch.float32, device=x.device)
        for s, e in _chunks(rows, x.shape[-1]):
            z = x[s:e].float()
            lse[s:e] = torch.logsumexp(z, dim=-1)
            if labels is not None:
                lp[s:e] = z.gather(-1, labels[s:e].unsqueeze(-1)).squeeze(-1) - lse[s:e]
            if want_entropy:
                probs = torch.softmax(z, dim=-1)
                expected[s:e] = (probs * _finite(z, probs)).sum(dim=-1)
                ent[s:e] = lse[s:e] - expected[s:e]
        ctx.save_for_backward(x, labels if labels is not None else torch.empty(0, dtype=torch.long), lse, expected)
        ctx.has_labels = labels is not None
        return lp, ent

    @staticmethod
    def backward(ctx, g_lp, g_ent):
        x, labels, lse, expected = ctx.saved_tensors
        grad = torch.empty_like(x)
        for s, e in _chunks(x.shape[0], x.shape[-1]):
            z = x[s:e].float()
            probs = (z - lse[s:e].unsqueeze(-1)).exp()
            g = probs * (-g_lp[s:e].unsqueeze(-1))  # d log p_y / d z = onehot(y) - p
            if ctx.has_labels:
                g.scatter_add_(-1, labels[s:e].unsqueeze(-1), g_lp[s:e].unsqueeze(-1))
            # d H / d z_v = -p_v (z_v - E_p[z])
            g -= probs * (_finite(z, probs) - expected[s:e].unsqueeze(-1)) * g_ent[s:e].unsqueeze(-1)
            grad[s:e] = g
        return grad, None, None


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[label]`` for ``logits [..., vocab]`` and integer ``labels [...]``, float32."""
    x = logits.reshape(-1, logits.shape[-1])
    lp, _ = _ChunkedLogSoftmax.apply(x, labels.reshape(-1).long(), False)
    return lp.reshape(logits.shape[:-1])


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy ``-sum_v p_v log p_v`` of ``softmax(logits)`` over the last dim, ``[...]``, float32."""
    x = logits.reshape(-1, logits.shape[-1])
    _, ent = _ChunkedLogSoftmax.apply(x, None, True)
    return ent.reshape(logits.shape[:-1])
