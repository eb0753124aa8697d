"""Which devices a process group serves, and a strict check that every collective gets tensors
on a device its group serves.

On a cluster a group created with ``"nccl"`` (``"hccl"``) serves device tensors only: a CPU
tensor (a checkpoint tag, a metric, a pickled object's bytes) fails with "No backend type
associated with device type cpu". On CPU every group is gloo and every tensor is a CPU tensor,
so that failure is invisible. ``strict_collectives`` makes it visible on CPU: the test *declares*
the backend string the cluster would use for the world (``Platform.backend_spec`` of the cluster's
platform); groups created inside the context inherit it unless created with an explicit backend,
as torch does; and every collective call is checked against its group's declared devices.

On CPU the simulation cannot tell a host tensor from a device tensor (both are CPU tensors), so
it checks the property the fix relies on: every group the engine, checkpoint and weight sync
talk over serves CPU on the cluster as well as the device (``cpu:gloo,cuda:nccl``).
"""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch

BACKEND_DEVICES = {"gloo": {"cpu"}, "nccl": {"cuda"}, "hccl": {"npu"}, "mpi": {"cpu", "cuda"}}

# torch.distributed functions checked, with the argument positions/names that hold tensors.
TENSOR_COLLECTIVES = (
    "broadcast", "all_reduce", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
    "reduce_scatter_tensor", "gather", "scatter", "all_to_all", "all_to_all_single", "send", "recv",
    "isend", "irecv",
)
OBJECT_COLLECTIVES = ("broadcast_object_list", "all_gather_object", "gather_object", "scatter_object_list")


class CollectiveDeviceError(RuntimeError):
    """A collective got a tensor on a device its group does not serve (names call, group, device)."""


def served_device_types(spec: str) -> set[str]:
    """``"cpu:gloo,cuda:nccl"`` -> {cpu, cuda}; ``"nccl"`` -> {cuda}; ``"gloo"`` -> {cpu}."""
    out: set[str] = set()
    for part in str(spec).lower().split(","):
        part = part.strip()
        if ":" in part:
            out.add(part.split(":", 1)[0])
        elif part:
            out |= BACKEND_DEVICES.get(part, {part})
    return out


def _tensors(value) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


class StrictCollectives:
    """Declared backend of each group; ``check`` raises on a tensor the group cannot carry."""

    def __init__(self, world_spec: str):
        self.world_spec = world_spec
        self.specs: dict[int, str] = {}
        self.calls: dict[str, int] = {}

    def spec_of(self, group) -> str:
        return self.world_spec if group is None else self.specs.get(id(group), self.world_spec)

    def check(self, name: str, group, tensors) -> None:
        served = served_device_types(self.spec_of(group))
        self.calls[name] = self.calls.get(name, 0) + 1
        for t in tensors:
            if t.device.type not in served:
                raise CollectiveDeviceError(
                    f"torch.distributed.{name}: a {t.device.type} tensor {tuple(t.shape)} on a group whose "
                    f"backend is '{self.spec_of(group)}' (serves {sorted(served)}); on the cluster this fails "
                    f"with 'No backend type associated with device type {t.device.type}'. Fix: create the "
                    "group with a backend for that device (Platform.backend_spec) or move the tensor")
        if name in OBJECT_COLLECTIVES and not served:
            raise CollectiveDeviceError(f"torch.distributed.{name}: group serves no device")


def _group_arg(fn, args, kwargs):
    if "group" in kwargs:
        return kwargs["group"]
    import inspect

    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    except TypeError:
        return None
    return bound.arguments.get("group")


@contextlib.contextmanager
def strict_collectives(world_spec: str):
    """Check every torch.distributed collective in the block against declared group backends.

    ``world_spec``: the backend string the world group has on the cluster being simulated, e.g.
    ``PLATFORMS["cuda"].backend_spec``. Yields the ``StrictCollectives`` (its ``calls`` count
    what was checked)."""
    import torch.distributed as dist

    state = StrictCollectives(world_spec)
    saved = {}

    def wrap(name, fn):
        @functools.wraps(fn)
        def checked(*args, **kwargs):
            tensors = [] if name in OBJECT_COLLECTIVES else list(_tensors(list(args) + list(kwargs.values())))
            state.check(name, _group_arg(fn, args, kwargs), tensors)
            return fn(*args, **kwargs)

        return checked

    @functools.wraps(dist.new_group)
    def new_group(*args, **kwargs):
        backend = kwargs.get("backend") if "backend" in kwargs else (args[2] if len(args) > 2 else None)
        if backend and not all(dist.is_backend_available(b.split(":")[-1]) for b in str(backend).split(",")):
            # declared for the cluster (e.g. "nccl"); here the group runs on this process's backend
            kwargs["backend"] = None
            args = args[:2]
        group = saved["new_group"](*args, **kwargs)
        state.specs[id(group)] = str(backend) if backend else world_spec
        return group

    for name in TENSOR_COLLECTIVES + OBJECT_COLLECTIVES:
        if hasattr(dist, name):
            saved[name] = getattr(dist, name)
            setattr(dist, name, wrap(name, saved[name]))
    saved["new_group"] = dist.new_group
    dist.new_group = new_group
    # megatron-core calls these through its own module references
    patched_modules = _patch_module_references(saved)
    try:
        yield state
    finally:
        for name, fn in saved.items():
            setattr(dist, name, fn)
        for module, name, fn in patched_modules:
            setattr(module, name, fn)


def _patch_module_references(saved: dict) -> list:
    """Modules that did ``from torch.distributed import x`` hold the original; point them at the
    checked one too (restored on exit)."""
    import sys

    import torch.distributed as dist

    originals = {id(fn): name for name, fn in saved.items()}
    out = []
    for mod in list(sys.modules.values()):
        modname = getattr(mod, "__name__", "") or ""
        if mod is None or mod is dist or not modname.startswith(("megatron", "mindspeed_rl")):
            continue
        for attr, value in list(vars(mod).items()):
            name = originals.get(id(value))
            if name is not None:
                out.append((mod, attr, value))
                setattr(mod, attr, getattr(dist, name))
    return out
