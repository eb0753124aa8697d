"""DAPO's dynamic sampling: train only on prompt groups whose rewards differ.

A group whose n samples all got the same reward has zero GRPO advantage: it adds no policy
gradient, only dilutes the token-mean loss. With ``rl_config.filter_groups_enable`` the trainer
generates one prompt batch after another (each ``global_batch_size`` prompts from the run's
sampler, so a resumed run draws the same batches), keeps the groups whose
``filter_groups_metric`` is not constant, and stops when it has ``global_batch_size`` of them
(the surplus of the last batch is dropped, as verl does) or after ``max_num_gen_batches``
batches; then it trains on what it kept, with a warning. No kept group at all: no update.

The update stays exact on a short batch: the engine normalises the loss by the token / sequence
counts of the rows it is given (``algorithms.aggregation``), so training on k < global_batch_size
prompts is the configured loss over those k prompts, with no padding rows to account for.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch


@dataclass
class ScoredRollout:
    """One or more generation rounds, scored; rows are prompt-major (n contiguous per prompt)."""

    prompt_rows: list[int]  # dataset row of each prompt
    prompts: list[list[int]]
    golds: list[str]
    outputs: list[list]  # outputs[p]: the RolloutOutputs of prompt p
    texts: list[str]  # decoded response, per row
    scores: list[float]  # total reward (after shaping), per row
    per_fn: dict[str, list[float]]  # raw value of each reward function, per row
    reward_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def prompt_index(self) -> list[int]:
        return [p for p, samples in enumerate(self.outputs) for _ in samples]

    def metric_values(self, metric: str) -> list[float]:
        if metric == "score":
            return self.scores
        if metric not in self.per_fn:
            raise KeyError(f"filter_groups_metric={metric!r} is neither 'score' nor a reward function of this run "
                           f"({sorted(self.per_fn)}); fix rl_config.filter_groups_metric")
        return self.per_fn[metric]

    def select(self, groups: Sequence[int]) -> "ScoredRollout":
        """The rollout restricted to prompt groups ``groups`` (in that order)."""
        starts, pos = [], 0
        for samples in self.outputs:
            starts.append(pos)
            pos += len(samples)
        rows = [r for g in groups for r in range(starts[g], starts[g] + len(self.outputs[g]))]
        return ScoredRollout(
            prompt_rows=[self.prompt_rows[g] for g in groups], prompts=[self.prompts[g] for g in groups],
            golds=[self.golds[g] for g in groups], outputs=[self.outputs[g] for g in groups],
            texts=[self.texts[r] for r in rows], scores=[self.scores[r] for r in rows],
            per_fn={k: [v[r] for r in rows] for k, v in self.per_fn.items()},
            reward_metrics=dict(self.reward_metrics),
        )

    @staticmethod
    def concat(parts: Sequence["ScoredRollout"]) -> "ScoredRollout":
        first = parts[0]
        metrics: dict[str, float] = {}
        for part in parts:
            for k, v in part.reward_metrics.items():
                metrics[k] = metrics.get(k, 0.0) + float(v)
        return ScoredRollout(
            prompt_rows=[x for p in parts for x in p.prompt_rows], prompts=[x for p in parts for x in p.prompts],
            golds=[x for p in parts for x in p.golds], outputs=[x for p in parts for x in p.outputs],
            texts=[x for p in parts for x in p.texts], scores=[x for p in parts for x in p.scores],
            per_fn={k: [x for p in parts for x in p.per_fn[k]] for k in first.per_fn}, reward_metrics=metrics,
        )


def varied_groups(values: Sequence[float], prompt_index: Sequence[int]) -> list[int]:
    """Group ids (in order) whose values are not all equal. Exact comparison: GRPO's advantage
    is exactly zero only for exactly equal rewards."""
    groups: dict[int, list[float]] = {}
    for v, g in zip(values, prompt_index):
        groups.setdefault(g, []).append(float(v))
    return [g for g, vs in groups.items() if max(vs) != min(vs)]


def zero_advantage_group_fraction(advantages: torch.Tensor, response_mask: torch.Tensor,
                                  prompt_index: Sequence[int]) -> float:
    """Share of the trained groups whose every sample has zero advantage on every valid token."""
    nonzero = ((advantages != 0) & response_mask.bool()).any(-1).tolist()
    per_group: dict[int, bool] = {}
    for g, nz in zip(prompt_index, nonzero):
        per_group[g] = per_group.get(g, False) or nz
    return sum(1 for v in per_group.values() if not v) / max(len(per_group), 1)


def fill_batch(first_rows: list[int], next_rows: Callable[[], list[int]],
               generate_and_score: Callable[[list[int], int], ScoredRollout], *, target: int, metric: str,
               max_num_gen_batches: int, warn: Optional[Callable[[str], None]] = None
               ) -> tuple[Optional[ScoredRollout], dict[str, float]]:
    """Generate rounds until ``target`` varied groups are kept or the cap is reached.

    ``generate_and_score(rows, round)`` generates and scores one prompt batch; ``next_rows()``
    draws the next batch from the run's sampler (only called when another round is needed).
    Returns the kept groups (at most ``target``; None when none was kept) and metrics.
    """
    kept: list[ScoredRollout] = []
    num_kept = generated = rounds = constant = 0
    all_scores: list[float] = []
    all_fn: dict[str, list[float]] = {}
    rows = first_rows
    while True:
        scored = generate_and_score(rows, rounds)
        rounds += 1
        generated += len(scored.prompts)
        all_scores.extend(scored.scores)
        for name, values in scored.per_fn.items():
            all_fn.setdefault(name, []).extend(values)
        groups = varied_groups(scored.metric_values(metric), scored.prompt_index)
        constant += len(scored.prompts) - len(groups)
        take = groups[: max(target - num_kept, 0)]
        if take:
            kept.append(scored.select(take))
            num_kept += len(take)
        if num_kept >= target:
            break
        if 0 < max_num_gen_batches <= rounds:
            if warn is not None:
                warn(f"dynamic sampling: only {num_kept} of {target} prompts had varied '{metric}' after "
                     f"{rounds} generation batches (rl_config.max_num_gen_batches={max_num_gen_batches}); "
                     + ("training on those" if num_kept else "skipping this iteration's update")
                     + ". Raise max_num_gen_batches or use easier/harder prompts.")
            break
        rows = next_rows()
    metrics = {
        "dynamic_sampling/gen_batches": float(rounds),
        "dynamic_sampling/prompts_generated": float(generated),
        "dynamic_sampling/groups_kept": float(num_kept),
        # varied groups past the target are dropped too (the last batch's surplus)
        "dynamic_sampling/groups_dropped": float(generated - num_kept),
        "dynamic_sampling/groups_constant": float(constant),
        "dynamic_sampling/batch_short": float(target - num_kept),
        "dynamic_sampling/generated_reward_mean": sum(all_scores) / max(len(all_scores), 1),
    }
    # reward/<fn>/mean is over the kept groups (biased towards varied ones); the generated
    # samples' means are the policy's own rates (e.g. the solve rate a run should raise)
    for name, values in all_fn.items():
        metrics[f"dynamic_sampling/generated_{name}_mean"] = sum(values) / max(len(values), 1)
    return (ScoredRollout.concat(kept) if kept else None), metrics
