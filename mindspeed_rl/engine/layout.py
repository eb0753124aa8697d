"""Where one engine rank sits in its model's parallel layout: the engine's answer to "who am I".

The worker and the trainer dispatch shards and collect results by this value; they never read
Megatron's parallel state themselves.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EngineLayout:
    """This rank's coordinates. DP x TP x PP = the engine's world size."""

    dp_rank: int
    dp_size: int
    tp_rank: int
    tp_size: int
    pp_rank: int
    pp_size: int

    def __post_init__(self):
        for rank, size, name in ((self.dp_rank, self.dp_size, "dp"), (self.tp_rank, self.tp_size, "tp"),
                                 (self.pp_rank, self.pp_size, "pp")):
            if not 0 <= rank < size:
                raise ValueError(f"{name}_rank={rank} is outside {name}_size={size}")

    @property
    def is_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.pp_size - 1

    @property
    def returns_outputs(self) -> bool:
        """The one rank per model-parallel group whose results the driver keeps: TP rank 0 on the
        last pipeline stage (every rank computes the same rows; one copy is enough)."""
        return self.tp_rank == 0 and self.is_last_stage

    def to_dict(self) -> dict:
        return asdict(self)
