#!/usr/bin/env python3
"""Summarise benchmarks/ppo_vs_grpo_demo.sh: per algorithm and seed, the accuracy reward's first-5
and last-5 iteration means, held-out greedy pass@1 at each validation, wall time and median s/it;
then, per seed, PPO at GRPO's wall clock (PPO's iterations whose summed step time fits in GRPO's
whole run, last-5 accuracy over those), and across seeds the median and spread of each figure and
of the s/it ratio PPO / GRPO (GRPO measured in the same queue, interleaved).

    python3 benchmarks/ppo_vs_grpo_summary.py [work_dirs/bench_ppo]
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def steps_of(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return [r for r in rows if r.get("iteration", 0) > 0 and "timing/all" in r]


def vals_of(run: Path) -> dict:
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return dict(sorted((r["iteration"], r[k]) for r in rows for k in r if k.startswith("val/") and k.endswith("/pass@1")))


def acc_within(steps: list[dict], seconds: float) -> tuple[float, int]:
    """Last-5 accuracy over the steps whose cumulative step time fits in ``seconds``."""
    t, kept = 0.0, []
    for s in steps:
        t += s["timing/all"]
        if t > seconds:
            break
        kept.append(s["reward/acc/mean"])
    return (statistics.mean(kept[-5:]) if kept else float("nan")), len(kept)


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.3f} (min {min(xs):.3f}, max {max(xs):.3f})"


def main(root: Path) -> None:
    seeds = sorted({p.name.rpartition("_s")[2] for p in root.iterdir() if p.is_dir()})
    table: dict[str, list[dict]] = {"grpo": [], "ppo": []}
    for seed in seeds:
        runs = {}
        for algo in ("grpo", "ppo"):
            run = root / f"{algo}_s{seed}"
            steps = steps_of(run)
            if not steps:
                print(f"{algo} seed {seed}: no training steps")
                continue
            acc = [s["reward/acc/mean"] for s in steps]
            wall = json.loads((run / "wall.json").read_text()) if (run / "wall.json").exists() else {}
            r = {"seed": seed, "acc_first5": statistics.mean(acc[:5]), "acc_last5": statistics.mean(acc[-5:]),
                 "steps": steps, "train_s": sum(s["timing/all"] for s in steps), "wall_s": wall.get("wall_s"),
                 "s_per_it": statistics.median(s["timing/all"] for s in steps), "vals": vals_of(run),
                 "ev": [s["critic/explained_var"] for s in steps if "critic/explained_var" in s]}
            runs[algo] = r
            table[algo].append(r)
            vals = " ".join(f"{v:.2f}" for v in r["vals"].values())
            ev = (f" | critic explained_var first {r['ev'][0]:.2f}, last-5 mean {statistics.mean(r['ev'][-5:]):.2f}, "
                  f"max {max(r['ev']):.2f}") if r["ev"] else ""
            print(f"{algo:4s} seed {seed}: acc {r['acc_first5']:.3f} -> {r['acc_last5']:.3f} | pass@1 at "
                  f"{list(r['vals'])}: {vals} | {len(steps)} its, wall {r['wall_s']} s, s/it median {r['s_per_it']:.2f}{ev}")
        if len(runs) == 2:
            at, n = acc_within(runs["ppo"]["steps"], runs["grpo"]["train_s"])
            runs["ppo"]["acc_at_grpo_clock"] = at
            print(f"     seed {seed}: at GRPO's {runs['grpo']['train_s']:.0f} s of steps PPO ran {n} its, last-5 acc {at:.3f} "
                  f"(GRPO {runs['grpo']['acc_last5']:.3f}); s/it ratio PPO/GRPO {runs['ppo']['s_per_it'] / runs['grpo']['s_per_it']:.2f}")
    for algo, runs in table.items():
        if runs:
            print(f"{algo:4s} over {len(runs)} seeds: acc first-5 {spread([r['acc_first5'] for r in runs])}; "
                  f"last-5 {spread([r['acc_last5'] for r in runs])}; s/it {spread([r['s_per_it'] for r in runs])}")
    paired = [r for r in table["ppo"] if "acc_at_grpo_clock" in r]
    if paired:
        print(f"ppo  at GRPO's wall clock: last-5 acc {spread([r['acc_at_grpo_clock'] for r in paired])}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("work_dirs/bench_ppo"))
