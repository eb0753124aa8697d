#!/usr/bin/env python3
"""Held-out pass@1 against wall-clock seconds: the R1 pipeline (generate -> filter -> SFT -> GRPO,
examples/r1_pipeline_tiny_cpu.sh) vs the plain GRPO demo from the same warm start.

Both runs' validations (every rl_config.test_freq iterations, greedy, 100 held-out problems) are
placed at the seconds spent so far: the pipeline's clock starts with generation + SFT
(``pipeline.json``), GRPO iterations add their ``timing/all`` (+ validation). Prints both series
and plain GRPO's pass@1 interpolated at the pipeline's times (equal wall clock).

    python benchmarks/r1_pipeline_summary.py [--pipeline work_dirs/r1_pipeline] [--plain work_dirs/plain_grpo/runs]
"""
from __future__ import annotations

import argparse
import json
import os


def series(metrics_path: str, offset: float = 0.0) -> list[tuple[float, int, float]]:
    """[(seconds, iteration, pass@1)] at each validation of a GRPO run."""
    out, clock = [], offset
    with open(metrics_path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            clock += float(r.get("timing/all", 0.0)) + float(r.get("timing/validation", 0.0))
            key = next((k for k in r if k.startswith("val/") and k.endswith("/pass@1")), None)
            if key:
                out.append((clock, int(r["iteration"]), float(r[key])))
    return out


def at(points: list[tuple[float, int, float]], seconds: float) -> float | None:
    """pass@1 linearly interpolated at ``seconds`` (None past the run's end)."""
    for (t0, _, p0), (t1, _, p1) in zip(points, points[1:]):
        if t0 <= seconds <= t1:
            return p0 + (p1 - p0) * (seconds - t0) / max(t1 - t0, 1e-9)
    return points[0][2] if points and seconds <= points[0][0] else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", default="work_dirs/r1_pipeline")
    ap.add_argument("--plain", default="work_dirs/plain_grpo/runs")
    args = ap.parse_args()
    with open(os.path.join(args.pipeline, "pipeline.json"), encoding="utf-8") as f:
        pipe = json.load(f)
    offset = pipe["seconds"]["generate_and_sft"]
    ours = series(os.path.join(args.pipeline, "grpo_runs", "metrics.jsonl"), offset)
    plain = series(os.path.join(args.plain, "metrics.jsonl"))
    print(f"pass@1 before SFT {pipe['pass@1']['before_sft']:.2f}, after SFT {pipe['pass@1']['after_sft']:.2f}, "
          f"after GRPO {pipe['pass@1']['after_grpo']:.2f}; generation + SFT {offset:.0f} s "
          f"(kept {pipe['kept']}/{pipe['generated']})")
    print("seconds | pipeline (GRPO iteration, pass@1) | plain GRPO at the same seconds")
    for t, it, p in ours:
        q = at(plain, t)
        print(f"{t:7.0f} | it {it:3d}  {p:.2f} | {'-' if q is None else f'{q:.2f}'}")
    print("plain GRPO:", " ".join(f"{t:.0f}s/it{it}:{p:.2f}" for t, it, p in plain))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
