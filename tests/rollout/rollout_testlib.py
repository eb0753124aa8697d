"""Shared helpers for the rollout tests: tiny Qwen2 models and independent references."""
from __future__ import annotations

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

VOCAB = 64


def tiny_qwen2(seed: int = 0, vocab: int = VOCAB, tie: bool = False) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        # Wide init: spread-out logits, so argmax ties / near-ties do not make tests flaky.
        initializer_range=0.2, tie_word_embeddings=tie,
    )
    return Qwen2ForCausalLM(cfg).eval()


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
