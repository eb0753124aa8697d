"""Platform objects: one per accelerator kind, with the same small interface."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Platform:
    """What the rest of the suite needs to know about the hardware it runs on."""

    name: str  # 'npu' | 'cuda' | 'cpu'
    device_type: str  # torch device type string
    dist_backend: str  # torch.distributed backend for collectives: hccl | nccl | gloo
    ray_resource: str | None  # Ray resource that counts one device ('NPU', 'GPU'); None on CPU

    # ---- devices -------------------------------------------------------------------------
    def local_rank(self) -> int:
        return int(os.environ.get("LOCAL_RANK", "0"))

    def device(self, local_rank: int | None = None) -> torch.device:
        """The torch.device this process computes on."""
        if self.name == "cpu":
            return torch.device("cpu")
        index = self.local_rank() if local_rank is None else local_rank
        return torch.device(self.device_type, index)

    def set_device(self, local_rank: int | None = None) -> None:
        if self.name == "cpu":
            return
        self._module().set_device(self.device(local_rank))

    def device_count(self) -> int:
        if self.name == "cpu":
            return 0
        return self._module().device_count()

    def synchronize(self) -> None:
        if self.name != "cpu":
            self._module().synchronize()

    def empty_cache(self) -> None:
        if self.name != "cpu":
            self._module().empty_cache()

    def memory_allocated(self) -> int:
        if self.name == "cpu":
            return 0
        return int(self._module().memory_allocated())

    def manual_seed(self, seed: int) -> None:
        """Seed the host and every device generator."""
        torch.manual_seed(seed)
        if self.name != "cpu":
            self._module().manual_seed_all(seed)

    def _module(self):
        return getattr(torch, self.device_type)

    # ---- Megatron ------------------------------------------------------------------------
    def apply_megatron_adaptor(self) -> None:
        """Make megatron-core run on this platform. Idempotent; call before building models."""
        from mindspeed_rl.platform import adaptors

        adaptors.apply(self.name)

    def init_process_group(self, rank: int, world_size: int, timeout_s: float = 1800.0) -> None:
        """Initialise torch.distributed with this platform's backend (MASTER_ADDR/PORT from env)."""
        import datetime

        import torch.distributed as dist

        if dist.is_initialized():
            return
        self.set_device()
        dist.init_process_group(
            self.dist_backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
