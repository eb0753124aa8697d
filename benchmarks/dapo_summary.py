#!/usr/bin/env python3
"""Summarise benchmarks/dapo_countdown_queue.sh runs (work_dirs/bench/*/metrics.jsonl).

Dynamic sampling A/B (filter_{true,false}_s<seed>): per step, the share of zero-advantage groups
among the groups generated (constant groups) and among the groups trained on, generation batches
used, and held-out greedy pass@1 at each validation against the run's cumulative training time
(sum of timing/all; validation time is left out, it is the same work on both sides). pass@1 "at
equal time" is interpolated linearly between validation points at fractions of the shorter side's
total training time. Countdown (countdown_s<seed>): first-5 and last-5 iteration means of the solve
rate (countdown_acc over every generated sample; reward/countdown_acc/mean without dynamic
sampling) and of the shaped reward, and the training time.

    python3 benchmarks/dapo_summary.py [work_dirs/bench]
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


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


def interpolate(curve: list[tuple[int, float, float]], t: float) -> float | None:
    """pass@1 at training time ``t``, linear between the validations around it (None past the last)."""
    if not curve or t < curve[0][1] - 1e-9 or t > curve[-1][1] + 1e-9:
        return None
    for (_, t0, p0), (_, t1, p1) in zip(curve, curve[1:]):
        if t0 - 1e-9 <= t <= t1 + 1e-9:
            return p0 if t1 - t0 < 1e-9 else p0 + (p1 - p0) * (t - t0) / (t1 - t0)
    return curve[-1][2]


def zero_adv(steps: list[dict]) -> tuple[list[float], list[float]]:
    """Per step: zero-advantage share of the groups generated, and of the groups trained on."""
    if steps and "dynamic_sampling/prompts_generated" in steps[0]:
        generated = [s["dynamic_sampling/groups_constant"] / s["dynamic_sampling/prompts_generated"] for s in steps]
    else:
        generated = [s["advantages/zero_group_fraction"] for s in steps]
    return generated, [s.get("advantages/zero_group_fraction", float("nan")) for s in steps]


def _fmt(xs) -> str:
    return " ".join(f"{x:.2f}" for x in xs)


def filter_report(bench: Path) -> None:
    seeds = sorted({p.name.rsplit("_s", 1)[1] for p in bench.glob("filter_*_s*") if p.is_dir()})
    table = {True: [], False: []}
    for seed in seeds:
        runs = {on: rows(bench / f"filter_{str(on).lower()}_s{seed}") for on in (True, False)}
        print(f"\n== seed {seed}: {len(train_steps(runs[True]))} steps with filtering, {len(train_steps(runs[False]))} without")
        for on, rs in runs.items():
            steps = train_steps(rs)
            if not steps:
                continue
            name = "filter on " if on else "filter off"
            generated, trained = zero_adv(steps)
            gens = [s.get("dynamic_sampling/gen_batches", 1.0) for s in steps]
            secs = [s["timing/all"] for s in steps]
            print(f"{name}: zero-adv groups generated per step {_fmt(generated)}")
            print(f"{name}: zero-adv groups trained   per step {_fmt(trained)}")
            print(f"{name}: generation batches per step {' '.join(f'{x:.0f}' for x in gens)}; "
                  f"s/step median {statistics.median(secs):.1f} (min {min(secs):.1f}, max {max(secs):.1f}), total {sum(secs):.0f}s")
            print(f"{name}: pass@1 (iteration, train seconds, pass@1): "
                  + ", ".join(f"({i}, {t:.0f}, {p:.2f})" for i, t, p in val_curve(rs)))
        if not (train_steps(runs[True]) and train_steps(runs[False])):
            continue
        curves = {on: val_curve(rs) for on, rs in runs.items()}
        horizon = min(c[-1][1] for c in curves.values())
        at = {on: [interpolate(curves[on], f * horizon) for f in FRACTIONS] for on in curves}
        print(f"pass@1 at equal training time ({', '.join(f'{f:.0%}' for f in FRACTIONS)} of {horizon:.0f}s): "
              f"on {_fmt(at[True])} | off {_fmt(at[False])}")
        for on, rs in runs.items():
            steps = train_steps(rs)
            generated, trained = zero_adv(steps)
            table[on].append(dict(generated=generated, trained=trained, secs=sum(s["timing/all"] for s in steps),
                                  final=curves[on][-1][2], start=curves[on][0][2], equal=at[on][-1]))
    if table[True] and table[False]:
        print(f"\n== mean over {len(table[True])} seeds (zero-adv: mean, first step, last step)")
        for on in (True, False):
            t = table[on]
            m = lambda f: statistics.mean(f(r) for r in t)  # noqa: E731
            print(f"filter {'on ' if on else 'off'}: zero-adv generated {m(lambda r: statistics.mean(r['generated'])):.2f} "
                  f"(first {m(lambda r: r['generated'][0]):.2f}, last {m(lambda r: r['generated'][-1]):.2f}); "
                  f"trained {m(lambda r: statistics.mean(r['trained'])):.2f} (first {m(lambda r: r['trained'][0]):.2f}, "
                  f"last {m(lambda r: r['trained'][-1]):.2f}); training {m(lambda r: r['secs']):.0f}s; "
                  f"pass@1 start {m(lambda r: r['start']):.3f}, at equal time {m(lambda r: r['equal']):.3f}, "
                  f"final {m(lambda r: r['final']):.3f}")


def countdown_report(bench: Path) -> None:
    for run in sorted(p for p in bench.glob("countdown_s*") if p.is_dir()):
        steps = train_steps(rows(run))
        if len(steps) < 10:
            print(f"\n{run.name}: only {len(steps)} steps")
            continue
        # with dynamic sampling reward/* covers the kept groups only: use the generated samples' rates
        gen = "dynamic_sampling/generated_countdown_acc_mean" in steps[0]
        acc = [s["dynamic_sampling/generated_countdown_acc_mean" if gen else "reward/countdown_acc/mean"] for s in steps]
        rew = [s["dynamic_sampling/generated_countdown_mean" if gen else "reward/countdown/mean"] for s in steps]
        print(f"\n{run.name}: {len(steps)} steps, {sum(s['timing/all'] for s in steps):.0f}s of training; "
              f"solve rate first-5 {statistics.mean(acc[:5]):.3f} -> last-5 {statistics.mean(acc[-5:]):.3f}; "
              f"countdown reward {statistics.mean(rew[:5]):.3f} -> {statistics.mean(rew[-5:]):.3f}; "
              f"all-wrong/constant groups generated first-5 {statistics.mean(zero_adv(steps[:5])[0]):.2f} -> last-5 "
              f"{statistics.mean(zero_adv(steps[-5:])[0]):.2f}" + (" (generated samples)" if gen else ""))
        print(f"{run.name}: solve rate per step {_fmt(acc)}")


if __name__ == "__main__":
    bench = Path(sys.argv[1] if len(sys.argv) > 1 else "work_dirs/bench")
    filter_report(bench)
    countdown_report(bench)
