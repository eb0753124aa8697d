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
    visible_devices_env: str | None = None  # what Ray sets per worker: CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES

    # ---- devices -------------------------------------------------------------------------
    def local_rank(self) -> int:
        """Index of this process's device among the devices it can see (``LOCAL_RANK``).

        Worker groups set it from the device Ray assigned (``platform.ray_devices``): a Ray
        worker that asked for one device sees only that one, so this is usually 0 there.
        """
        return int(os.environ.get("LOCAL_RANK", "0"))

    def device(self, local_rank: int | None = None) -> torch.device:
        """The torch.device this process computes on."""
        return torch.device(self.device_name(local_rank))

    def device_name(self, local_rank: int | None = None) -> str:
        """``'cuda:0'``-style name of the device (a string: no torch_npu needed to name an NPU)."""
        if self.name == "cpu":
            return "cpu"
        return f"{self.device_type}:{self.local_rank() if local_rank is None else local_rank}"

    @property
    def backend_spec(self) -> str:
        """torch.distributed backend string: a CPU backend beside the device backend, so host
        tensors and Python objects can use the same groups as device tensors (a device-only
        group refuses them: "No backend type associated with device type cpu")."""
        if self.name == "cpu":
            return "gloo"
        return f"cpu:gloo,{self.device_type}:{self.dist_backend}"

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
    def apply_megatron_adaptor(self, mindspeed_flags: list[str] | None = None) -> None:
        """Make megatron-core run on this platform. Idempotent; call before anything imports
        megatron. ``mindspeed_flags`` (NPU): MindSpeed feature flags, see ``adaptors.mindspeed_flags``."""
        from mindspeed_rl.platform import adaptors

        adaptors.apply(self.name, mindspeed_flags)

    def use_transformer_engine(self) -> bool:
        """Whether the Transformer Engine layer spec can be used: CUDA with a real TE installed
        (MindSpeed registers a dummy ``transformer_engine`` module on NPU; that one is not TE)."""
        from mindspeed_rl.platform.adaptors import real_transformer_engine

        return self.name == "cuda" and real_transformer_engine()

    def init_process_group(self, rank: int, world_size: int, timeout_s: float = 1800.0) -> None:
        """Initialise torch.distributed with this platform's backend (MASTER_ADDR/PORT from env)."""
        import datetime

        import torch.distributed as dist

        if dist.is_initialized():
            return
        self.set_device()
        dist.init_process_group(
            self.backend_spec,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
