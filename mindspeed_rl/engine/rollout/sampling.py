"""Pure torch sampling math shared by the HF backend (and usable by tests as the spec).

Order of operations follows vLLM's v1 sampler so both backends draw from the same set:
temperature -> min_p (on the temperature-scaled distribution) -> top_k -> top_p (on the
distribution renormalised over the top-k survivors) -> sample.
"""
from __future__ import annotations

import torch

from mindspeed_rl.engine.rollout.base import SamplingParams


def scaled_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """fp32 logits divided by the temperature (temperature 0 = greedy: left unscaled)."""
    logits = logits.float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    return logits


def allowed_token_mask(logits: torch.Tensor, sampling: SamplingParams) -> torch.Tensor:
    """Bool [B, V]: tokens that sampling may emit under top_k / top_p / min_p.

    Ties at the top-k threshold are all kept (as in vLLM's threshold implementation).
    """
    scaled = scaled_logits(logits, sampling.temperature)
    keep = torch.ones_like(scaled, dtype=torch.bool)
    if sampling.min_p > 0.0:
        probs = torch.softmax(scaled, dim=-1)
        keep &= probs >= sampling.min_p * probs.max(dim=-1, keepdim=True).values
    masked = scaled.masked_fill(~keep, float("-inf"))
    vocab = scaled.shape[-1]
    if 0 < sampling.top_k < vocab:
        kth = torch.topk(masked, sampling.top_k, dim=-1).values[..., -1:]
        keep &= masked >= kth
        masked = masked.masked_fill(~keep, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(masked, dim=-1, descending=True)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        # A token survives if the mass of strictly more likely tokens is still below top_p;
        # the most likely token always survives.
        keep_sorted = mass_before < sampling.top_p
        keep_sorted[..., 0] = True
        keep &= torch.zeros_like(keep).scatter(-1, order, keep_sorted)
    return keep


def sample_next_tokens(
    logits: torch.Tensor, sampling: SamplingParams, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row; return (tokens [B], log-probs [B]).

    The log-prob is log softmax(logits / temperature) of the drawn token over the full vocabulary,
    WITHOUT top-k/top-p/min-p renormalisation (the quantity the training engine recomputes).
    """
    scaled = scaled_logits(logits, sampling.temperature)
    if sampling.greedy:
        tokens = scaled.argmax(dim=-1)
    else:
        keep = allowed_token_mask(logits, sampling)
        probs = torch.softmax(scaled.masked_fill(~keep, float("-inf")), dim=-1)
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    logprobs = torch.log_softmax(scaled, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return tokens, logprobs
