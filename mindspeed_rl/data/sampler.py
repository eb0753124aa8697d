"""Deterministic, resumable, data-parallel prompt sampler.

Each epoch is a permutation of the dataset drawn from ``seed + epoch``; it is cut into global
batches of ``global_batch_size`` and DP rank ``r`` of ``dp_size`` gets the r-th contiguous slice
of every global batch, so the ranks together see exactly what one rank would see at DP 1.
``state_dict()`` after k batches resumes with batch k+1 (same seed, same order).
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

import numpy as np


class PromptSampler:
    def __init__(
        self,
        dataset_size: int,
        global_batch_size: int,
        seed: int = 1234,
        shuffle: bool = True,
        num_epochs: Optional[int] = 1,
        dp_rank: int = 0,
        dp_size: int = 1,
        drop_last: bool = True,
    ):
        if dataset_size <= 0:
            raise ValueError(f"dataset_size={dataset_size}: the dataset is empty")
        if global_batch_size <= 0 or global_batch_size % dp_size:
            raise ValueError(
                f"global_batch_size={global_batch_size} must be a positive multiple of dp_size={dp_size}"
            )
        if not 0 <= dp_rank < dp_size:
            raise ValueError(f"dp_rank={dp_rank} must be in [0, dp_size={dp_size})")
        if drop_last and global_batch_size > dataset_size:
            raise ValueError(
                f"global_batch_size={global_batch_size} > dataset size {dataset_size}: no full batch "
                "(lower the batch size or set drop_last=false)"
            )
        if num_epochs is not None and num_epochs < 1:
            raise ValueError(f"num_epochs={num_epochs} must be >= 1 (or None for no limit)")
        self.dataset_size = dataset_size
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.num_epochs = num_epochs
        self.dp_rank = dp_rank
        self.dp_size = dp_size
        self.drop_last = drop_last
        self.epoch = 0
        self.batch_in_epoch = 0  # batches already handed out in self.epoch
        self.consumed_batches = 0

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def batches_per_epoch(self) -> int:
        full, rest = divmod(self.dataset_size, self.global_batch_size)
        return full if self.drop_last or not rest else full + 1

    @property
    def dropped_per_epoch(self) -> int:
        """Prompts left out of each epoch by drop_last (a different subset each epoch)."""
        return self.dataset_size % self.global_batch_size if self.drop_last else 0

    def __len__(self) -> int:
        """Batches left to yield (infinite epochs: those left in the current epoch)."""
        if self.num_epochs is None:
            return self.batches_per_epoch - self.batch_in_epoch
        return (self.num_epochs - self.epoch) * self.batches_per_epoch - self.batch_in_epoch

    # -- order ---------------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.dataset_size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.dataset_size)

    def _rank_slice(self, global_batch: np.ndarray) -> List[int]:
        per_rank = -(-len(global_batch) // self.dp_size)  # a short last batch splits as evenly as it can
        return global_batch[self.dp_rank * per_rank : (self.dp_rank + 1) * per_rank].tolist()

    def __iter__(self) -> Iterator[List[int]]:
        while self.num_epochs is None or self.epoch < self.num_epochs:
            order = self.epoch_order(self.epoch)
            while self.batch_in_epoch < self.batches_per_epoch:
                start = self.batch_in_epoch * self.global_batch_size
                batch = self._rank_slice(order[start : start + self.global_batch_size])
                # advance first: a state_dict() taken after this batch resumes with the next one
                self.batch_in_epoch += 1
                self.consumed_batches += 1
                yield batch
            self.epoch += 1
            self.batch_in_epoch = 0

    # -- resume --------------------------------------------------------------------------------
    # dp_size may change on resume: every rank slices the same global batch
    _CHECKED = ("dataset_size", "global_batch_size", "seed", "shuffle", "drop_last")

    def state_dict(self) -> Dict[str, Any]:
        state = {k: getattr(self, k) for k in self._CHECKED}
        state.update(epoch=self.epoch, batch_in_epoch=self.batch_in_epoch, consumed_batches=self.consumed_batches)
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        diff = {k: (state.get(k), getattr(self, k)) for k in self._CHECKED if state.get(k) != getattr(self, k)}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"sampler state does not match this run ({detail}); resume with the same settings")
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.consumed_batches = int(state["consumed_batches"])
