"""Where rollout replicas live in a colocated (hybrid) job, and how prompts are shared out.

The actor trains on ``world_size`` ranks with tensor parallel ``train_tp`` and pipeline parallel
``train_pp``. On the same ranks, the rollout engine runs with its own tensor parallel size
``infer_tp`` (usually smaller: generation is memory-bound, more replicas give more throughput).
The world is cut into ``world_size // infer_tp`` inference TP groups of consecutive ranks (the
layout vLLM's ``external_launcher`` uses: TP fastest, then data parallel), each group being one
data-parallel replica. Weight sync hands every rank FULL HF-named tensors, so vLLM's own
``load_weights`` cuts them for its TP rank: the regrouping from training TP/PP to inference TP
needs no extra communication beyond the gather.

Prompts are split into contiguous, balanced shards, one per replica (all n samples of a prompt
stay on one replica, which lets vLLM's prefix cache share the prompt); concatenating replica
results in replica order restores the original prompt order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RolloutParallelPlan:
    world_size: int
    train_tp: int
    train_pp: int
    infer_tp: int

    @property
    def dp_size(self) -> int:
        """Number of inference replicas."""
        return self.world_size // self.infer_tp

    @property
    def tp_groups(self) -> list[list[int]]:
        """Global ranks of each inference TP group; group i is replica i."""
        return [list(range(g * self.infer_tp, (g + 1) * self.infer_tp)) for g in range(self.dp_size)]

    def dp_rank(self, rank: int) -> int:
        """The replica that global ``rank`` belongs to."""
        self._check_rank(rank)
        return rank // self.infer_tp

    def tp_rank(self, rank: int) -> int:
        """``rank``'s position inside its inference TP group."""
        self._check_rank(rank)
        return rank % self.infer_tp

    def is_replica_leader(self, rank: int) -> bool:
        """The one rank per replica that returns the replica's results."""
        return self.tp_rank(rank) == 0

    def _check_rank(self, rank: int) -> None:
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} outside world of size {self.world_size}")


def plan_rollout_parallel(
    world_size: int,
    train_tp: int,
    train_pp: int,
    infer_tp: int,
    devices_per_node: int | None = None,
) -> RolloutParallelPlan:
    """Check the layouts against each other and return the rollout plan.

    Errors name the config key to change (actor_config.*, generate_config.*).
    """
    for key, value in (
        ("world size", world_size),
        ("actor_config.tensor_model_parallel_size", train_tp),
        ("actor_config.pipeline_model_parallel_size", train_pp),
        ("generate_config.infer_tensor_parallel_size", infer_tp),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if world_size % (train_tp * train_pp):
        raise ValueError(
            f"world size {world_size} is not divisible by actor TP x PP = {train_tp} x {train_pp}: "
            "change actor_config.tensor_model_parallel_size / pipeline_model_parallel_size or the "
            "number of devices"
        )
    if world_size % infer_tp:
        raise ValueError(
            f"world size {world_size} is not divisible by generate_config.infer_tensor_parallel_size"
            f"={infer_tp}: pick an inference TP that divides the number of devices"
        )
    if devices_per_node is not None:
        # A TP group spanning nodes would run its all-reduces over the network.
        if infer_tp > devices_per_node or devices_per_node % infer_tp:
            raise ValueError(
                f"generate_config.infer_tensor_parallel_size={infer_tp} must divide the "
                f"{devices_per_node} devices per node so that no inference TP group spans nodes"
            )
    return RolloutParallelPlan(world_size, train_tp, train_pp, infer_tp)


def shard_bounds(n_items: int, dp_size: int, dp_rank: int) -> tuple[int, int]:
    """[start, end) of replica ``dp_rank``'s contiguous share of ``n_items`` (sizes differ by <= 1)."""
    if dp_size < 1 or not 0 <= dp_rank < dp_size:
        raise ValueError(f"dp_rank {dp_rank} outside data-parallel size {dp_size}")
    base, extra = divmod(n_items, dp_size)
    start = dp_rank * base + min(dp_rank, extra)
    return start, start + base + (1 if dp_rank < extra else 0)


def shard_for_replica(items: Sequence[T], dp_size: int, dp_rank: int) -> list[T]:
    start, end = shard_bounds(len(items), dp_size, dp_rank)
    return list(items[start:end])


def gather_in_order(per_replica: Sequence[Sequence[T]], n_items: int | None = None) -> list[T]:
    """Concatenate replica results (replica order = prompt order); check nothing was lost."""
    out = [x for shard in per_replica for x in shard]
    if n_items is not None and len(out) != n_items:
        sizes = [len(s) for s in per_replica]
        raise RuntimeError(f"rollout gathered {len(out)} results for {n_items} prompts (per replica: {sizes})")
    return out
