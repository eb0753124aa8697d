"""Turn prompts and rollout outputs into the engine's batch format (see mindspeed_rl.engine.batch).

Token ids go straight from the rollout engine into training: no decode/re-encode round trip, so
the ids trained on are exactly the ids sampled.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Experience:
    """One GRPO iteration's samples, row i = one response; rows of a prompt are contiguous."""

    batch: dict[str, torch.Tensor]  # input_ids, attention_mask, response_mask, rollout_log_probs
    prompt_index: list[int]  # row -> index of its prompt in this iteration (the GRPO group id)
    response_ids: list[list[int]]
    finish_reasons: list[str]
    extras: dict[str, list] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return len(self.response_ids)


def build_experience(prompts: list[list[int]], outputs: list[list], pad_token_id: int) -> Experience:
    """``outputs[p]`` are the RolloutOutputs of prompt ``p`` (n each)."""
    rows_prompt, rows_resp, rows_lp, finish, index = [], [], [], [], []
    for p, (prompt, samples) in enumerate(zip(prompts, outputs)):
        for out in samples:
            rows_prompt.append(list(prompt))
            rows_resp.append(list(out.token_ids))
            rows_lp.append(list(out.logprobs) if out.logprobs is not None else None)
            finish.append(out.finish_reason)
            index.append(p)
    n = len(rows_resp)
    seq = max((len(a) + len(b) for a, b in zip(rows_prompt, rows_resp)), default=1)
    resp_width = max((len(r) for r in rows_resp), default=1) or 1
    input_ids = torch.full((n, seq), pad_token_id, dtype=torch.long)
    attention = torch.zeros((n, seq), dtype=torch.long)
    response_mask = torch.zeros((n, resp_width), dtype=torch.long)
    rollout_lp = torch.zeros((n, resp_width), dtype=torch.float32)
    has_lp = all(lp is not None for lp in rows_lp)
    for i, (pr, rs) in enumerate(zip(rows_prompt, rows_resp)):
        ids = pr + rs
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[i, : len(ids)] = 1
        response_mask[i, : len(rs)] = 1
        if has_lp and rs:
            rollout_lp[i, : len(rs)] = torch.tensor(rows_lp[i], dtype=torch.float32)
    batch = {"input_ids": input_ids, "attention_mask": attention, "response_mask": response_mask}
    if has_lp:
        batch["rollout_log_probs"] = rollout_lp
    return Experience(batch=batch, prompt_index=index, response_ids=rows_resp, finish_reasons=finish)


def slice_rows(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in batch.items()}


def response_stats(exp: Experience, max_tokens: int) -> dict[str, float]:
    lengths = torch.tensor([len(r) for r in exp.response_ids], dtype=torch.float32)
    prompt_lengths = (exp.batch["attention_mask"].sum(-1) - exp.batch["response_mask"].sum(-1)).float()
    clipped = torch.tensor([f == "length" for f in exp.finish_reasons], dtype=torch.float32)
    return {
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "response_length/min": float(lengths.min()),
        "response_length/clip_ratio": float(clipped.mean()),
        "prompt_length/mean": float(prompt_lengths.mean()),
        "prompt_length/max": float(prompt_lengths.max()),
    }
