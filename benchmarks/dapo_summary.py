#!/usr/bin/env python3
"""Summarise benchmarks/dapo_countdown_queue.sh runs (work_dirs/bench/*/metrics.jsonl).

Dynamic sampling A/B (filter_{true,false}_s<seed>): per step, the share of zero-advantage groups
among the groups generated (constant groups) and among the groups trained on, generation batches
used, and held-out greedy pass@1 at each validation against the run's cumulative training time
(sum of timing/all); "at equal time" compares both sides at the last validation that each
reached within the shorter side's total time. Countdown (countdown_s<seed>): first-5 and last-5
iteration means of the solve rate (reward/countdown_acc/mean) and of the shaped reward.

    python3 benchmarks/dapo_summary.py [work_dirs/bench]
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def train_steps(rs: list[dict]) -> list[dict]:
    return [r for r in rs if r.get("iteration", 0) > 0 and "timing/all" in r]


def val_curve(rs: list[dict]) -> list[tuple[int, float, float]]:
    """(iteration, cumulative training seconds, pass@1) at each validation."""
    out, t = [], 0.0
    for r in sorted(rs, key=lambda r: r["iteration"]):
        if r.get("iteration", 0) > 0:
            t += r.get("timing/all", 0.0)
        key = next((k for k in r if k.startswith("val/") and k.endswith("/pass@1")), None)
        if key:
            out.append((r["iteration"], t, r[key]))
    return out


def at_time(curve, t):
    reached = [c for c in curve if c[1] <= t + 1e-9]
    return reached[-1] if reached else None


def filter_report(bench: Path) -> None:
    seeds = sorted({p.name.rsplit("_s", 1)[1] for p in bench.glob("filter_*_s*") if p.is_dir()})
    for seed in seeds:
        on, off = rows(bench / f"filter_true_s{seed}"), rows(bench / f"filter_false_s{seed}")
        print(f"\n== seed {seed}: {len(train_steps(on))} steps with filtering, {len(train_steps(off))} without")
        for name, rs in (("filter on ", on), ("filter off", off)):
            steps = train_steps(rs)
            if not steps:
                continue
            if "dynamic_sampling/prompts_generated" in steps[0]:
                const = [s["dynamic_sampling/groups_constant"] / s["dynamic_sampling/prompts_generated"] for s in steps]
            else:
                const = [s["advantages/zero_group_fraction"] for s in steps]
            trained = [s.get("advantages/zero_group_fraction", float("nan")) for s in steps]
            gens = [s.get("dynamic_sampling/gen_batches", 1.0) for s in steps]
            secs = [s["timing/all"] for s in steps]
            print(f"{name}: zero-adv groups generated per step {' '.join(f'{x:.2f}' for x in const)}")
            print(f"{name}: zero-adv groups trained   per step {' '.join(f'{x:.2f}' for x in trained)}")
            print(f"{name}: generation batches per step {' '.join(f'{x:.0f}' for x in gens)}; "
                  f"s/step median {statistics.median(secs):.1f} (min {min(secs):.1f}, max {max(secs):.1f}), total {sum(secs):.0f}s")
            print(f"{name}: pass@1 (iteration, train seconds, pass@1): "
                  + ", ".join(f"({i}, {t:.0f}, {p:.2f})" for i, t, p in val_curve(rs)))
        if train_steps(on) and train_steps(off):
            t = min(sum(s["timing/all"] for s in train_steps(on)), sum(s["timing/all"] for s in train_steps(off)))
            a, b = at_time(val_curve(on), t), at_time(val_curve(off), t)
            print(f"at equal time ({t:.0f}s of training): filter on pass@1 {a[2]:.2f} (iteration {a[0]}), "
                  f"filter off pass@1 {b[2]:.2f} (iteration {b[0]})")


def countdown_report(bench: Path) -> None:
    for run in sorted(p for p in bench.glob("countdown_s*") if p.is_dir()):
        steps = train_steps(rows(run))
        if len(steps) < 10:
            print(f"\n{run.name}: only {len(steps)} steps")
            continue
        acc = [s["reward/countdown_acc/mean"] for s in steps]
        rew = [s["reward/countdown/mean"] for s in steps]
        print(f"\n{run.name}: {len(steps)} steps, {sum(s['timing/all'] for s in steps):.0f}s of training; "
              f"solve rate first-5 {statistics.mean(acc[:5]):.3f} -> last-5 {statistics.mean(acc[-5:]):.3f}; "
              f"countdown reward {statistics.mean(rew[:5]):.3f} -> {statistics.mean(rew[-5:]):.3f}")


if __name__ == "__main__":
    bench = Path(sys.argv[1] if len(sys.argv) > 1 else "work_dirs/bench")
    filter_report(bench)
    countdown_report(bench)
