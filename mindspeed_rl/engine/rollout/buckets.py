"""Split a stream of HF-named tensors into buckets of bounded size for weight loading.

Weight sync gathers full tensors from the actor's TP/PP shards one at a time; loading them in
buckets bounds the extra device memory held at once (gathered tensors waiting to be loaded) while
keeping the number of ``load_weights`` calls small. The stream is consumed lazily: a bucket is
yielded as soon as adding the next tensor would exceed the budget.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch

DEFAULT_BUCKET_BYTES = 512 * 1024**2


def tensor_nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def iter_weight_buckets(
    named_tensors: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int = DEFAULT_BUCKET_BYTES
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Yield lists of (name, tensor) whose total bytes stay within ``bucket_bytes``.

    Order is preserved and every tensor appears exactly once. A single tensor larger than the
    budget gets a bucket of its own (it cannot be split without knowing the model's sharding).
    Duplicate names raise: loading a name twice in one sync is always a bug upstream.
    """
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be > 0 (rollout weight-sync bucket size), got {bucket_bytes}")
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    seen: set[str] = set()
    for name, tensor in named_tensors:
        if name in seen:
            raise ValueError(f"weight sync received {name!r} twice")
        seen.add(name)
        nbytes = tensor_nbytes(tensor)
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket
