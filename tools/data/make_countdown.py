#!/usr/bin/env python3
"""Write solvable, distinct Countdown problems as JSONL (``nums``, ``target``, ``solution``,
``steps``), split into train and test with no problem in both; preprocess them with
``configs/datasets/countdown.yaml`` (handler ``countdown``, template ``qwen_countdown``).

    python3 tools/data/make_countdown.py --out-dir data/countdown --train 50000 --test 500
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mindspeed_rl.data.countdown import countdown_problems  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--train", type=int, default=50000)
    p.add_argument("--test", type=int, default=500)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--min-numbers", type=int, default=3)
    p.add_argument("--max-numbers", type=int, default=4)
    p.add_argument("--min-number", type=int, default=1)
    p.add_argument("--max-number", type=int, default=99)
    p.add_argument("--min-target", type=int, default=1)
    p.add_argument("--max-target", type=int, default=100)
    a = p.parse_args()
    from mindspeed_rl.demo.assets import write_jsonl

    rows = countdown_problems(a.train + a.test, a.seed, a.min_numbers, a.max_numbers, a.min_number, a.max_number,
                              a.min_target, a.max_target)
    out = Path(a.out_dir)
    write_jsonl(rows[: a.train], out / "train.jsonl")
    write_jsonl(rows[a.train:], out / "test.jsonl")
    print(f"{a.train} train and {a.test} test problems in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
