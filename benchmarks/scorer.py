#!/usr/bin/env python3
"""Throughput and agreement of the ``acc`` reward against plain math-verify, in the same run.

    python benchmarks/scorer.py [--rounds 3] [--workers 2] [--labelled]

Scenarios: MATH-500 reference solutions against the dataset answers; the labelled answer forms of
tests/fixtures/rewards/answer_forms.jsonl (issue 15: nine classes with hard negatives); with
``--labelled`` also tests/rewards/labelled.py (5,000+ rewrites and near misses; slow).
Baseline: math-verify ``verify(parse("\\boxed{gold}"), parse(response))`` in this process (its
default signal timeouts, main thread). Ours: ``RewardScorer(["acc"], num_workers=N)`` with its
hard per-sample timeout, start-up excluded. The two sides are timed alternately, ``--rounds``
times each (first side swapped every round): samples/s is reported as median [min, max]. For
labelled sets the accuracy of each side against the labels is printed, with false passes and
false fails; for all sets, how often the two agree.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path("/work/shared/data/math/math500_test.jsonl")
FIXTURE = ROOT / "tests" / "fixtures" / "rewards" / "math500_answers.jsonl"


def math500():
    if DATA.exists():
        rows = [json.loads(l) for l in open(DATA)]
        return [r["solution"] for r in rows], [r["answer"] for r in rows], None
    rows = [json.loads(l) for l in open(FIXTURE)]
    return [r["solution_tail"] for r in rows], [r["answer"] for r in rows], None


def answer_forms():
    sys.path.insert(0, str(ROOT))
    from tests.rewards.answer_forms import load

    rows = load()
    return [r["response"] for r in rows], [r["gold"] for r in rows], [r["correct"] for r in rows], [r["class"] for r in rows]


def labelled_py():
    from tests.rewards.labelled import build

    cases = build()
    return [c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases]


def plain_math_verify(responses, golds):
    from math_verify import parse, verify

    out = []
    for r, g in zip(responses, golds):
        try:
            out.append(bool(verify(parse("\\boxed{" + g + "}"), parse(r))))
        except Exception:
            out.append(False)
    return out


def _verdict_line(name, got, labels):
    n = len(labels)
    right = sum(a == b for a, b in zip(got, labels))
    fp = sum(a and not b for a, b in zip(got, labels))
    fn = sum(b and not a for a, b in zip(got, labels))
    return f"  {name:<22} {right}/{n} = {100 * right / n:.2f}% right, {fp} false passes, {fn} false fails"


def bench(title, data, scorer, rounds):
    responses, golds, labels = data[:3]
    classes = data[3] if len(data) > 3 else None
    n = len(responses)
    mv_rates, our_rates = [], []
    for k in range(rounds):
        for side in ((0, 1) if k % 2 == 0 else (1, 0)):
            if side == 0:
                t = time.perf_counter()
                base = plain_math_verify(responses, golds)
                mv_rates.append(n / (time.perf_counter() - t))
            else:
                _, per_fn, m = scorer.score(responses, golds)
                ours = [v > 0 for v in per_fn["acc"]]
                our_rates.append(n / m["seconds"])
    fmt = lambda r: f"{statistics.median(r):8.1f} samples/s [{min(r):.1f}, {max(r):.1f}]"
    print(f"== {title}: {n} samples, {rounds} interleaved rounds")
    print(f"  math-verify (1 process)  {fmt(mv_rates)}")
    print(f"  RewardScorer acc ({scorer.num_workers} w)  {fmt(our_rates)}")
    print(f"  speed ratio (median ours / median math-verify): {statistics.median(our_rates) / statistics.median(mv_rates):.2f}x")
    print(f"  same verdict as math-verify on {sum(a == b for a, b in zip(base, ours))}/{n}")
    if labels is not None:
        print(_verdict_line("ours:", ours, labels))
        print(_verdict_line("plain math-verify:", base, labels))
    if classes is not None:
        for c in dict.fromkeys(classes):
            idx = [i for i, k in enumerate(classes) if k == c]
            pick = lambda xs: [xs[i] for i in idx]
            print(f"  - {c}")
            print("  " + _verdict_line("ours:", pick(ours), pick(labels)))
            print("  " + _verdict_line("plain math-verify:", pick(base), pick(labels)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per side")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--labelled", action="store_true", help="also score tests/rewards/labelled.py (slow)")
    args = ap.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
    from mindspeed_rl.rewards import RewardScorer

    with RewardScorer(["acc"], num_workers=args.workers, timeout_s=10.0) as scorer:
        scorer.wait_ready()
        bench("MATH-500 reference solutions", math500(), scorer, args.rounds)
        bench("labelled answer forms (tests/fixtures/rewards/answer_forms.jsonl)", answer_forms(), scorer, args.rounds)
        if args.labelled:
            bench("rewrites / near misses (tests/rewards/labelled.py)", labelled_py(), scorer, 1)


if __name__ == "__main__":
    main()
