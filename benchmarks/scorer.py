#!/usr/bin/env python3
"""Throughput of the ``acc`` reward on MATH-500 against plain math-verify, in the same run.

    python benchmarks/scorer.py [--repeat 2] [--workers 2]

Responses are the reference solutions (their last \\boxed{} is the answer); golds are the
dataset answers. Baseline: math-verify ``parse`` (gold boxed, response as is) + ``verify``,
called directly in this process (with its default signal timeouts, main thread). Ours:
``RewardScorer(["acc"], num_workers=N)`` with its hard per-sample timeout, start-up excluded.
Also prints how often the two agree. A second scenario scores the rewritten answers and near
misses of tests/rewards/labelled.py (no string-identical shortcut there).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path("/work/shared/data/math/math500_test.jsonl")
FIXTURE = ROOT / "tests" / "fixtures" / "rewards" / "math500_answers.jsonl"


def load(repeat: int):
    if DATA.exists():
        rows = [json.loads(l) for l in open(DATA)]
        responses = [r["solution"] for r in rows]
    else:
        rows = [json.loads(l) for l in open(FIXTURE)]
        responses = [r["solution_tail"] for r in rows]
    golds = [r["answer"] for r in rows]
    return responses * repeat, golds * repeat


def bench(title, responses, golds, workers):
    from math_verify import parse, verify

    from mindspeed_rl.rewards import RewardScorer

    n = len(responses)
    t = time.perf_counter()
    base = [1.0 if verify(parse("\\boxed{" + g + "}"), parse(r)) else 0.0 for r, g in zip(responses, golds)]
    base_s = time.perf_counter() - t
    with RewardScorer(["acc"], num_workers=workers, timeout_s=10.0) as scorer:
        scorer.wait_ready()
        _, per_fn, m = scorer.score(responses, golds)
    ours = per_fn["acc"]
    agree = sum(a == b for a, b in zip(base, ours))
    print(f"== {title}: {n} samples")
    print(f"  math-verify parse+verify (1 process): {n / base_s:9.1f} samples/s ({base_s:.2f} s) acc {sum(base) / n:.4f}")
    print(f"  RewardScorer acc ({workers} workers):      {n / m['seconds']:9.1f} samples/s ({m['seconds']:.2f} s) "
          f"acc {sum(ours) / n:.4f} timeouts {m['timeouts']}")
    print(f"  speed ratio (ours / math-verify): {base_s / m['seconds']:.2f}x; same verdict on {agree}/{n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2, help="times each MATH-500 row is scored (GRPO repeats golds)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    responses, golds = load(args.repeat)
    bench(f"MATH-500 reference solutions x {args.repeat}", responses, golds, args.workers)

    sys.path.insert(0, str(ROOT / "tests"))
    from rewards.labelled import build

    cases = build()
    bench("rewritten answers / near misses (tests/rewards/labelled.py)", [c[0] for c in cases],
          [c[1] for c in cases], args.workers)


if __name__ == "__main__":
    main()
