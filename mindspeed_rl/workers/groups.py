"""The driver's view of each worker group: named methods with typed payloads.

The trainer calls ``actor.compute_log_probs(batch)``, ``actor.update(batch, ...)``,
``ref.compute_log_probs(batch)``, ``actor.generate(prompts, sampling)``,
``reward.score(texts, golds, extras)`` and, for PPO, ``critic.compute_values(batch)`` and
``critic.update(batch, ...)``. Each group deals the batch out to its ranks by their
``EngineLayout`` (one DP shard per DP rank, the same shard on every rank of a model-parallel
group) and puts the results back in row order, so the loop only ever holds whole batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch

Batch = Dict[str, torch.Tensor]  # the engine batch format, see mindspeed_rl.engine.batch


@dataclass(frozen=True)
class RewardScores:
    """What the reward group returns for a batch of responses (in their order)."""

    totals: List[float]  # the weighted sum of the reward functions, per response
    per_function: Dict[str, List[float]]  # each reward function's raw value, per response
    metrics: Dict[str, float]  # scorer counters: timeouts, extraction_failures


def _stop(group, timeout: float = 60) -> None:
    """Ask every rank to release its engines, then remove the group (even if that failed)."""
    try:
        group.run("shutdown", timeout=timeout)
    except Exception:  # noqa: BLE001 - shutting down anyway
        pass
    group.shutdown()


class EngineGroup:
    """Ranks of one Megatron engine (``layouts``: each rank's ``EngineLayout``, in rank order)."""

    which = "actor"  # the engine the workers' compute_log_probs uses

    def __init__(self, group, layouts: Sequence):
        sizes = {layout.dp_size for layout in layouts}
        if len(layouts) != group.world_size or len(sizes) != 1:
            raise RuntimeError(f"worker group '{group.name}': {len(layouts)} layouts with DP sizes {sorted(sizes)} "
                               f"for {group.world_size} ranks")
        self.group = group
        self.layouts = list(layouts)
        self.dp_size = sizes.pop()

    @property
    def workers(self) -> list:
        return self.group.workers

    def _shards(self, batch: Batch, num_mini_batches: int) -> List[torch.Tensor]:
        """Rows of each DP rank: the same global mini-batches as ``dp_shard_indices``, rows dealt
        so that every DP rank gets about the same number of tokens."""
        from mindspeed_rl.engine.batch import balanced_dp_shard_indices

        return balanced_dp_shard_indices(batch["attention_mask"].sum(-1).tolist(), self.dp_size, num_mini_batches)

    def _call_sharded(self, method: str, batch: Batch, *args, num_mini_batches: int = 1):
        shards = self._shards(batch, num_mini_batches)
        per_rank = [({k: v[shards[lay.dp_rank]] for k, v in batch.items()}, *args) for lay in self.layouts]
        return self.group.run_per_rank(method, per_rank), shards

    def compute_log_probs(self, batch: Batch) -> torch.Tensor:
        """``[rows, response_len]`` float32 log-probs of the batch's responses under this engine."""
        results, shards = self._call_sharded("compute_log_probs", batch, self.which)
        return self._rows_back(batch, results, shards, "log_probs")

    def _rows_back(self, batch: Batch, results, shards, key: str) -> torch.Tensor:
        """The reporting ranks' ``[shard, R]`` outputs put back in the batch's row order."""
        out = torch.zeros(batch["response_mask"].shape, dtype=torch.float32)
        for layout, result in zip(self.layouts, results):
            if layout.returns_outputs and result is not None:
                part = result[key]
                out[shards[layout.dp_rank], : part.shape[1]] = part
        return out


class ReferenceGroup(EngineGroup):
    """The frozen reference: its own ranks, or (colocated) the actor ranks' second engine."""

    which = "ref"

    def __init__(self, group, layouts: Sequence, owns_group: bool = True):
        super().__init__(group, layouts)
        self.owns_group = owns_group

    @classmethod
    def build(cls, group) -> "ReferenceGroup":
        """Build the reference engine on every rank of its own group."""
        return cls(group, group.run("build"))

    def shutdown(self) -> None:
        if self.owns_group:
            _stop(self.group)


class ActorGroup(EngineGroup):
    """The hybrid actor ranks: the trained policy, its rollout engines (and a colocated reference)."""

    def __init__(self, group, layouts: Sequence, with_reference: bool):
        super().__init__(group, layouts)
        self.with_reference = with_reference

    @classmethod
    def build(cls, group, total_optimizer_steps: int, with_reference: bool) -> "ActorGroup":
        """Build the actor (and colocated reference) and the rollout engines on every rank."""
        return cls(group, group.run("build", total_optimizer_steps), with_reference)

    def reference(self) -> ReferenceGroup:
        """The colocated reference engine of these ranks."""
        if not self.with_reference:
            raise RuntimeError("this actor group was built without a colocated reference")
        return ReferenceGroup(self.group, self.layouts, owns_group=False)

    def update(self, batch: Batch, *, num_mini_batches: int, epochs: int) -> Dict[str, float]:
        """One actor update (``num_mini_batches`` optimizer steps per epoch); the loss metrics,
        reduced over all ranks, plus grad_norm, lr and num_optimizer_steps."""
        results, _ = self._call_sharded("update", batch, num_mini_batches, epochs, num_mini_batches=num_mini_batches)
        return next(r for r in results if r is not None)

    def generate(self, prompts: List[List[int]], sampling: Dict[str, Any]) -> List[list]:
        """``sampling['n']`` responses per prompt, in prompt order. Every rank gets all prompts and
        its rollout replica generates a share; the reporting ranks' shares are put back in order."""
        results = [r for r in self.group.run("generate", prompts, sampling) if r is not None]
        outputs: List[list] = []
        for start, part in sorted(results, key=lambda r: r[0]):
            if start != len(outputs):
                raise RuntimeError(f"rollout shares do not tile the prompts: got a share at {start}, "
                                   f"expected {len(outputs)}")
            outputs.extend(part)
        if len(outputs) != len(prompts):
            raise RuntimeError(f"rollout returned {len(outputs)} prompt results for {len(prompts)} prompts")
        return outputs

    def sync_weights(self) -> None:
        """Push the actor's weights into the rollout engines (in memory)."""
        self.group.run("sync_weights")

    def save(self, directory: str) -> None:
        self.group.run("save", directory)

    def load(self, directory: str) -> None:
        self.group.run("load", directory)

    def export_state(self) -> Dict[str, torch.Tensor]:
        """Full HF-named weights of the actor."""
        return self.group.run("export_state")[0]

    def shutdown(self) -> None:
        _stop(self.group)


class CriticGroup(EngineGroup):
    """The PPO critic ranks (``workers.critic_worker``): values of a batch, value-loss updates."""

    @classmethod
    def build(cls, group, total_optimizer_steps: int) -> "CriticGroup":
        return cls(group, group.run("build", total_optimizer_steps))

    def compute_values(self, batch: Batch) -> torch.Tensor:
        """``[rows, response_len]`` float32 values of the batch's response tokens (0 where masked)."""
        results, shards = self._call_sharded("compute_values", batch)
        return self._rows_back(batch, results, shards, "values")

    def update(self, batch: Batch, *, num_mini_batches: int, epochs: int) -> Dict[str, float]:
        """One critic update (``returns`` and ``old_values`` in the batch); the value-loss metrics."""
        results, _ = self._call_sharded("update", batch, num_mini_batches, epochs, num_mini_batches=num_mini_batches)
        return next(r for r in results if r is not None)

    def save(self, directory: str) -> None:
        self.group.run("save", directory)

    def load(self, directory: str) -> None:
        self.group.run("load", directory)

    def shutdown(self) -> None:
        _stop(self.group)


class RewardGroup:
    """The reward scorer (one CPU worker with a process pool)."""

    def __init__(self, group):
        self.group = group

    @property
    def workers(self) -> list:
        return self.group.workers

    def score(self, responses: List[str], golds: List[str], extras: Optional[List[dict]] = None) -> RewardScores:
        totals, per_function, metrics = self.group.run("score", responses, golds, extras)[0]
        return RewardScores(list(totals), dict(per_function), dict(metrics))

    def shutdown(self) -> None:
        _stop(self.group)
