"""Weighted combination of reward functions, scored in a hard-timeout process pool."""
from __future__ import annotations

import logging
import math
import time
from typing import Mapping, Optional, Sequence

from .extraction import ExtractionConfig, extract_answer
from .pool import ERROR, OK, TIMEOUT, HardTimeoutPool
from .registry import function_spec, resolve_spec

logger = logging.getLogger(__name__)


def parse_weighted_names(specs: Sequence[str]) -> tuple[list[str], list[float]]:
    """``["acc", "format:0.5"]`` -> (["acc", "format"], [1.0, 0.5])."""
    from .registry import available_rewards

    names, weights = [], []
    for spec in specs:
        name, weight = spec, 1.0
        head, sep, tail = spec.rpartition(":")
        if sep and _is_float(tail):  # "pkg.mod:func" keeps its colon; "acc:0.5" is a weight
            name, weight = head, float(tail)
        elif sep and (head in available_rewards() or not tail.isidentifier()):
            raise ValueError(f"reward {spec!r}: weight {tail!r} is not a number; write NAME:WEIGHT "
                             "(e.g. acc:0.5) or package.module:function")
        names.append(name)
        weights.append(weight)
    return names, weights


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


class _SampleScorer:
    """Runs every function on one sample; lives in each worker (and in-process for 0 workers)."""

    def __init__(self, specs, extraction: ExtractionConfig, function_kwargs: Mapping):
        self.specs = list(specs)
        self.fns = [resolve_spec(s) for s in self.specs]
        self.extraction = extraction
        self.function_kwargs = dict(function_kwargs or {})

    def __call__(self, item):
        response, gold, extra = item
        response = "" if response is None else str(response)
        ext = dict(self.function_kwargs)
        ext.setdefault("extraction", self.extraction)
        if extra:
            ext.update(extra)
        failed = extract_answer(response, ext["extraction"]).answer is None
        return [float(fn(response, gold, ext)) for fn in self.fns], failed


def _init_worker(specs, extraction, function_kwargs):
    """Worker initializer: quiet math-verify, warm the parsers, return the per-sample handler."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
    scorer = _SampleScorer(specs, extraction, function_kwargs)
    from .equivalence import is_equivalent

    is_equivalent("\\frac{1}{2}", "0.5")  # imports sympy, antlr and the regex caches now
    is_equivalent("x+1", "\\sqrt{2}")
    return scorer


class RewardScorer:
    """See the package docstring for the contract."""

    def __init__(self, functions: Sequence[str] = ("acc",), weights: Optional[Sequence[float]] = None,
                 num_workers: int = 2, timeout_s: float = 10.0, timeout_score: float = 0.0,
                 extraction: ExtractionConfig = ExtractionConfig(),
                 function_kwargs: Optional[Mapping] = None, start_method: str = "spawn", spares: int = 1):
        functions = list(functions)
        if not functions:
            raise ValueError("verifier_function is empty: name at least one reward function, e.g. [acc]")
        if weights is None:
            weights = [1.0] * len(functions)
        weights = [float(w) for w in weights]
        if len(weights) != len(functions):
            raise ValueError(f"verifier_weight has {len(weights)} entries but verifier_function has "
                             f"{len(functions)} ({functions}); give one weight per function")
        if len(set(functions)) != len(functions):
            raise ValueError(f"verifier_function lists a function twice: {functions}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.functions = functions
        self.weights = weights
        self.timeout_s = float(timeout_s)
        self.timeout_score = float(timeout_score)
        specs = [function_spec(name) for name in functions]  # raises KeyError on unknown names now
        init_args = (specs, extraction, dict(function_kwargs or {}))
        self.num_workers = int(num_workers)
        if self.num_workers < 0:
            raise ValueError(f"num_workers={num_workers}: must be >= 0 (0 scores in-process, without the timeout)")
        if self.num_workers > 0:
            self._pool: Optional[HardTimeoutPool] = HardTimeoutPool(
                _init_worker, init_args, num_workers=self.num_workers, timeout_s=self.timeout_s,
                spares=spares, start_method=start_method)
            self._local = None
        else:  # debugging / tiny jobs: no processes, and therefore no timeout
            self._pool = None
            self._local = _SampleScorer(*init_args)

    def wait_ready(self) -> None:
        """Block until the worker processes have started (otherwise the first ``score`` waits)."""
        if self._pool is not None:
            self._pool.wait_ready()

    def score(self, responses: Sequence[str], golds: Sequence[str],
              extra: Optional[Sequence[Optional[Mapping]]] = None):
        """Score a batch: returns (totals, per-function rewards, metrics)."""
        n = len(responses)
        if len(golds) != n:
            raise ValueError(f"score(): {n} responses but {len(golds)} golds")
        if extra is not None and len(extra) != n:
            raise ValueError(f"score(): {n} responses but {len(extra)} extra entries")
        items = [(responses[i], golds[i], dict(extra[i]) if extra is not None and extra[i] else None)
                 for i in range(n)]
        t0 = time.perf_counter()
        if self._pool is not None:
            outcomes = self._pool.map(items)
        else:
            outcomes = []
            for it in items:
                try:
                    outcomes.append((OK, self._local(it)))
                except Exception as exc:
                    outcomes.append((ERROR, f"{type(exc).__name__}: {exc}"))
        seconds = time.perf_counter() - t0

        per_fn: dict[str, list[float]] = {name: [] for name in self.functions}
        totals: list[float] = []
        timeouts = errors = extraction_failures = 0
        for i, (status, value) in enumerate(outcomes):
            if status == OK:
                values, failed = value
                extraction_failures += bool(failed)
            else:
                if status == TIMEOUT:
                    timeouts += 1
                else:
                    errors += 1
                    logger.warning("reward error on sample %d: %s", i, value)
                values = [self.timeout_score] * len(self.functions)
            for name, v in zip(self.functions, values):
                per_fn[name].append(v)
            totals.append(sum(w * v for w, v in zip(self.weights, values)))

        metrics = {
            "samples": n,
            "timeouts": timeouts,
            "errors": errors,
            "extraction_failures": extraction_failures,
            "seconds": seconds,
            "samples_per_s": n / seconds if seconds > 0 else math.inf,
            "reward/mean": sum(totals) / n if n else 0.0,
        }
        for name in self.functions:
            metrics[f"reward/{name}/mean"] = sum(per_fn[name]) / n if n else 0.0
        return totals, per_fn, metrics

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
