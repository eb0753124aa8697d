"""Wall-clock spans of a training step, summed by name (``timing/<name>`` metrics)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class Timer:
    """``with timer("rollout"): ...`` adds the span's seconds to ``timer.times["timing/rollout"]``;
    a name used twice in one step (dynamic sampling's extra rounds) sums."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            key = f"timing/{name}"
            self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - start
