"""Park tensors' storage in host memory and bring it back, keeping every view valid.

Megatron DDP lays parameters and gradients out as views into flat buffers, and the optimizer
holds references to parameters and state tensors. Replacing tensors would break those aliases, so
we act on *storages*: copy the bytes to a host buffer, then ``resize_(0)`` the storage (device
memory is freed, every view still points at the same, now empty, storage); onload resizes it back
and copies the bytes in. All views see the original data again, bit for bit.

The same code runs on CPU (the "host copy" is then a second CPU buffer): that keeps the path
tested everywhere and the saving is real on GPU/NPU.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

import torch


class StorageParking:
    """A set of storages that can be moved to host memory and back as one unit.

    ``keep_data=False`` (gradient buffers, zeroed before every update anyway): offload only frees
    the device memory, nothing is copied to the host, and onload brings the storage back zeroed.
    """

    def __init__(self, name: str, keep_data: bool = True):
        self.name = name
        self.keep_data = keep_data
        self._storages: Dict[int, torch.UntypedStorage] = {}
        self._host: Dict[int, torch.Tensor] = {}
        self._sizes: Dict[int, int] = {}

    def add(self, tensors: Iterable[torch.Tensor], exclude: Iterable[int] = ()) -> None:
        excluded = set(exclude)
        for t in tensors:
            if t is None or not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            key = st.data_ptr()
            if key in excluded or key in self._storages or st.nbytes() == 0:
                continue
            self._storages[key] = st

    def keys(self) -> List[int]:
        return list(self._storages)

    @property
    def offloaded(self) -> bool:
        return bool(self._sizes)

    def host_bytes(self) -> int:
        """Bytes held in host memory for this parking (0 when ``keep_data`` is False)."""
        return sum(h.numel() for h in self._host.values())

    def nbytes(self) -> int:
        return sum(st.nbytes() for st in self._storages.values())

    def offload(self) -> int:
        """Move to host; returns the bytes freed on the device (0 if already offloaded)."""
        if self._sizes:
            return 0
        freed = 0
        self._sizes = {key: st.nbytes() for key, st in self._storages.items()}
        for key, st in self._storages.items():
            if not self.keep_data:
                freed += st.nbytes()
                continue
            # pin host memory when the data lives on an accelerator so onload can be asynchronous
            pin = st.device.type != "cpu"
            host = torch.empty(st.nbytes(), dtype=torch.uint8, pin_memory=pin)
            host.untyped_storage().copy_(st, non_blocking=pin)
            self._host[key] = host
            freed += st.nbytes()
        if self.keep_data and any(st.device.type != "cpu" for st in self._storages.values()):
            from mindspeed_rl.platform import current_platform

            current_platform().synchronize()  # the async copies must land before the storage goes
        for st in self._storages.values():
            st.resize_(0)
        return freed

    def onload(self) -> None:
        if not self._sizes:
            return
        for key, st in self._storages.items():
            st.resize_(self._sizes[key])
            if self.keep_data:
                st.copy_(self._host[key].untyped_storage())
            else:
                torch.empty(0, dtype=torch.uint8, device=st.device).set_(st).zero_()
        self._host.clear()
        self._sizes.clear()


def optimizer_state_tensors(optimizer) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """(state tensors, main params) of a Megatron optimizer (chained or not)."""
    chained = getattr(optimizer, "chained_optimizers", None) or [optimizer]
    states, mains = [], []
    for opt in chained:
        inner = opt.optimizer
        for group in inner.param_groups:
            mains.extend(group["params"])
        for state in inner.state.values():
            states.extend(v for v in state.values() if isinstance(v, torch.Tensor))
    return states, mains
