#!/usr/bin/env python3
"""Converter speed and memory against a plain file copy of the same bytes, in the same run.

Writes a random-weight checkpoint of Qwen2.5-0.5B's shape (bf16, sharded safetensors), converts
it HF -> Megatron TP2 PP2 and back, each conversion in its own subprocess so its peak RSS is its
own. Baseline: copying the same shard files with a read/write loop (8 MiB buffer).

  python benchmarks/convert.py [--work-dir /tmp/convert_bench] [--tp 2 --pp 2] [--keep]

Targets: each direction >= 0.5x the copy rate; peak RSS <= half the checkpoint size.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
CLI = os.path.join(ROOT, "tools", "convert", "convert_ckpt.py")


def _child(argv: list[str]) -> None:
    """Run one conversion in this (fresh) process; print seconds and peak RSS as JSON."""
    sys.path.insert(0, os.path.dirname(CLI))
    import convert_ckpt

    t0 = time.perf_counter()
    rc = convert_ckpt.main(argv)
    secs = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"rc": rc, "seconds": secs, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "peak_rss": _vm_hwm()}))


def _vm_hwm() -> int:
    """Peak RSS of this process image. Not ru_maxrss: Linux carries that over from the forking
    parent across exec, so a child of a big parent would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _run_child(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"conversion failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise SystemExit(f"conversion failed: {out.stderr[-3000:]}")
    return res


def _idle_rss() -> int:
    code = ("import torch, safetensors, tqdm, mindspeed_rl.models.convert, re;"
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024)")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              check=True).stdout.strip())


def _copy_tree_files(src: str, dst: str) -> tuple[int, float]:
    os.makedirs(dst, exist_ok=True)
    total, t0 = 0, time.perf_counter()
    for name in sorted(os.listdir(src)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(src, name), "rb") as fi, open(os.path.join(dst, name), "wb") as fo:
            shutil.copyfileobj(fi, fo, 8 * 2**20)
            total += fo.tell()
    return total, time.perf_counter() - t0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return _child(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work-dir", default=None)
    p.add_argument("--tp", type=int, default=2)
    p.add_argument("--pp", type=int, default=2)
    p.add_argument("--shard-mb", type=int, default=500, help="HF shard size of the random checkpoint")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()

    import torch

    from mindspeed_rl.models.random_checkpoint import qwen25_05b_config, write_random_hf_checkpoint

    work = args.work_dir or tempfile.mkdtemp(prefix="convert_bench_")
    hf, mg, back, copy = (os.path.join(work, d) for d in ("hf", "mg", "back", "copy"))
    try:
        t0 = time.perf_counter()
        size = write_random_hf_checkpoint(hf, qwen25_05b_config(), torch.bfloat16, args.shard_mb * 10**6)
        print(f"random Qwen2.5-0.5B-shaped checkpoint: {size / 1e6:.0f} MB bf16 in "
              f"{len(os.listdir(hf)) - 2} shards ({time.perf_counter() - t0:.1f}s to write)")
        copied, copy_s = _copy_tree_files(hf, copy)
        shutil.rmtree(copy)
        to_mg = _run_child(["hf2mcore", "--load-dir", hf, "--save-dir", mg, "--tp", str(args.tp),
                            "--pp", str(args.pp), "--quiet"])
        to_hf = _run_child(["mcore2hf", "--load-dir", mg, "--save-dir", back, "--quiet"])
        idle = _idle_rss()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    copy_rate = copied / copy_s / 1e6
    rows = [("plain copy (read/write, 8 MiB)", copy_s, None),
            (f"hf2mcore TP{args.tp} PP{args.pp}", to_mg["seconds"], to_mg["peak_rss"]),
            (f"mcore2hf TP{args.tp} PP{args.pp}", to_hf["seconds"], to_hf["peak_rss"])]
    print(f"\n{'step':34s} {'seconds':>8s} {'MB/s':>8s} {'x copy':>7s} {'peak RSS MB':>12s} {'RSS/ckpt':>9s}")
    ok = True
    for name, secs, rss in rows:
        rate = size / secs / 1e6
        ratio = rate / copy_rate
        rss_txt = f"{rss / 1e6:12.0f} {rss / size:9.2f}" if rss else f"{'-':>12s} {'-':>9s}"
        print(f"{name:34s} {secs:8.2f} {rate:8.0f} {ratio:7.2f} {rss_txt}")
        if rss:
            ok &= ratio >= 0.5 and rss <= size / 2
    print(f"\n(python + torch + converter imports alone: {idle / 1e6:.0f} MB RSS)")
    print(f"targets (>= 0.5x copy rate, peak RSS <= {size / 2e6:.0f} MB): {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
