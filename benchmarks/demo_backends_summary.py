#!/usr/bin/env python3
"""Summarise benchmarks/demo_backends_queue.sh: per backend and seed, held-out greedy pass@1 at
each validation, the accuracy reward's first-5 and last-5 iteration means, the wall time (and
whether it includes preparation), median and fastest s/it; then the mean over seeds per backend.

    python3 benchmarks/demo_backends_summary.py [work_dirs/bench_backends]
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def load_rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise(run: Path) -> dict | None:
    rows = load_rows(run)
    steps = [r for r in rows if r.get("iteration", 0) > 0 and "timing/all" in r]
    if not steps:
        return None
    vals = {r["iteration"]: r[k] for r in rows for k in r if k.startswith("val/") and k.endswith("/pass@1")}
    acc = [s["reward/acc/mean"] for s in steps]
    its = [s["timing/all"] for s in steps]
    wall_path = run / "wall.json"
    wall = json.loads(wall_path.read_text()) if wall_path.exists() else {}
    return {"vals": dict(sorted(vals.items())), "acc_first5": statistics.mean(acc[:5]),
            "acc_last5": statistics.mean(acc[-5:]), "steps": len(steps), "wall_s": wall.get("wall_s"),
            "with_preparation": wall.get("with_preparation"), "rc": wall.get("rc"),
            "s_per_it_median": statistics.median(its), "s_per_it_min": min(its)}


def main(root: Path) -> None:
    by_backend: dict[str, list[dict]] = {}
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        backend, _, seed = run.name.rpartition("_s")
        s = summarise(run)
        if s is None:
            print(f"{run.name}: no training steps yet")
            continue
        by_backend.setdefault(backend, []).append(s)
        vals = " ".join(f"{v:.2f}" for v in s["vals"].values())
        wall = f"{s['wall_s'] / 60:.1f} min{' incl. preparation' if s['with_preparation'] else ''}" if s["wall_s"] else "running"
        print(f"{backend:5s} seed {seed}: pass@1 at {list(s['vals'])}: {vals} | acc {s['acc_first5']:.3f} -> "
              f"{s['acc_last5']:.3f} | {s['steps']} its | {wall} | s/it median {s['s_per_it_median']:.2f} "
              f"fastest {s['s_per_it_min']:.2f}")
    for backend, runs in by_backend.items():
        first = statistics.mean(next(iter(r["vals"].values())) for r in runs)
        last = statistics.mean(list(r["vals"].values())[-1] for r in runs)
        print(f"{backend:5s} mean of {len(runs)} seeds: pass@1 {first:.3f} -> {last:.3f} (+{last - first:.3f}); acc "
              f"{statistics.mean(r['acc_first5'] for r in runs):.3f} -> {statistics.mean(r['acc_last5'] for r in runs):.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "work_dirs/bench_backends"))
