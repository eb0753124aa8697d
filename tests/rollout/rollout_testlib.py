"""Shared helpers for the rollout tests: their tiny Qwen2 model and independent references."""
from __future__ import annotations

import torch

from mindspeed_rl.testing import tiny

VOCAB = 64


def tiny_qwen2(seed: int = 0, vocab: int = VOCAB, tie: bool = False):
    # Wide init: spread-out logits, so argmax ties / near-ties do not make tests flaky.
    return tiny.tiny_qwen2(seed, vocab_size=vocab, max_position_embeddings=256, initializer_range=0.2,
                           tie_word_embeddings=tie, bos_token_id=None, eos_token_id=None, **tiny.SMALL)


@torch.no_grad()
def argmax_decode(model, prompt: list[int], steps: int) -> list[int]:
    """Plain greedy loop: full forward each step, no KV cache, no padding."""
    ids = list(prompt)
    for _ in range(steps):
        ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]


@torch.no_grad()
def teacher_forced_logits(model, prompt: list[int], response: list[int]) -> torch.Tensor:
    """fp32 logits predicting each response token, from one unpadded forward pass."""
    ids = torch.tensor([prompt + response])
    logits = model(ids).logits[0].float()
    return logits[len(prompt) - 1 : len(prompt) - 1 + len(response)]


def reference_allowed(logits_row: torch.Tensor, temperature: float, top_k: int, top_p: float,
                      min_p: float, slack: float = 1e-4) -> set[int]:
    """Allowed next tokens, written independently of the engine (python loops over the vocab),
    with a small slack at each threshold to absorb cached-vs-uncached float noise."""
    z = (logits_row.double() / temperature).tolist()
    m = max(z)
    e = [pow(2.718281828459045, v - m) for v in z]
    s = sum(e)
    p = [v / s for v in e]
    allowed = list(range(len(z)))
    if min_p > 0:
        pmax = max(p)
        allowed = [i for i in allowed if p[i] >= (min_p - slack) * pmax]
    if top_k > 0:
        ordered = sorted((z[i] for i in allowed), reverse=True)
        kth = ordered[min(top_k, len(ordered)) - 1]
        allowed = [i for i in allowed if z[i] >= kth - slack]
    if top_p < 1.0:
        mass = sum(p[i] for i in allowed)
        ranked = sorted(allowed, key=lambda i: -p[i])
        kept, before = [], 0.0
        for i in ranked:
            if before < top_p + slack:
                kept.append(i)
            before += p[i] / mass
        allowed = kept
    return set(allowed)
