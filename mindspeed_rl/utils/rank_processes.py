"""Run a function on N gloo ranks, each in its own process, and collect the results.

Why not ``torch.multiprocessing.spawn``: when one rank raises, the others sit in a collective
forever and the test hangs. Here the parent watches every rank; the first failure (an exception,
a crash, or the timeout) kills the rest and raises one error carrying the failing rank's traceback.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from typing import Any, Callable

from mindspeed_rl.utils.net import free_port


class DistributedTestError(RuntimeError):
    """A rank failed, crashed or timed out; the message names the rank and carries its traceback."""


def _to_bytes(obj) -> bytes:
    # torch.save, not the queue's pickler: tensors sent through a multiprocessing queue travel as
    # shared-memory handles that die with the rank process.
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _from_bytes(data: bytes):
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=False)


def _rank_main(fn, rank, world_size, port, args, kwargs, results, env):
    os.environ.update(env)
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(world_size),
        }
    )
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(1)  # N ranks on 2 cores: oversubscribed threads are slower, not faster
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
        try:
            out = fn(rank, world_size, *args, **kwargs)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
        results.put((rank, "ok", _to_bytes(out)))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent
        results.put((rank, "error", traceback.format_exc()))


def run_distributed(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Call ``fn(rank, world_size, *args, **kwargs)`` on ``world_size`` gloo ranks.

    ``fn`` must be importable (a module-level function) because ranks are spawned. Returns the
    per-rank return values (which must pickle) in rank order. Raises DistributedTestError naming
    the first rank that failed, with its traceback, after killing the others.
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(
            target=_rank_main,
            args=(fn, rank, world_size, port, args, kwargs, results, dict(env or {})),
            daemon=False,  # dist_checkpointing and DataLoader workers spawn children of their own
        )
        for rank in range(world_size)
    ]
    for p in procs:
        p.start()
    outputs: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(outputs) < world_size:
            try:
                rank, status, payload = results.get(timeout=0.2)
            except queue.Empty:
                for rank, p in enumerate(procs):
                    # A rank that died without reporting (segfault, os._exit, OOM kill).
                    if rank not in outputs and p.exitcode is not None and p.exitcode != 0:
                        # It may have reported just before dying; drain once more.
                        try:
                            r, status, payload = results.get(timeout=0.5)
                        except queue.Empty:
                            raise DistributedTestError(
                                f"rank {rank} of {world_size} exited with code {p.exitcode} without a result"
                            ) from None
                        if status == "error":
                            raise DistributedTestError(f"rank {r} of {world_size} failed:\n{payload}") from None
                        outputs[r] = _from_bytes(payload)
                        break
                if time.monotonic() > deadline:
                    missing = sorted(set(range(world_size)) - set(outputs))
                    raise DistributedTestError(
                        f"timed out after {timeout:.0f}s waiting for ranks {missing} of {world_size}"
                    ) from None
                continue
            if status == "error":
                raise DistributedTestError(f"rank {rank} of {world_size} failed:\n{payload}")
            outputs[rank] = _from_bytes(payload)
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(timeout=5)
        results.close()
    return [outputs[r] for r in range(world_size)]
