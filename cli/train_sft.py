#!/usr/bin/env python3
"""Supervised fine-tuning on the Megatron engine (the Open-R1 / R1-Distill SFT step).

    python cli/train_sft.py --config-name sft_tiny_cpu
    python cli/train_sft.py --config-name sft_qwen25_7b model.load=/ckpt/qwen25_7b_tp4 data.train_path=traces.jsonl
    torchrun --nproc-per-node 8 cli/train_sft.py --config-name sft_qwen25_7b train.data_parallel_size=2

Configs live in configs/sft/. Without torchrun the script starts TP x PP x DP local ranks itself.
A rerun with the same save directory resumes from its latest checkpoint. Rows longer than
data.seq_length are refused, naming the row, unless data.truncate=true.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mindspeed_rl.config.cli import config_arg_parser, run_cli  # noqa: E402
from mindspeed_rl.config.structured import field_docs  # noqa: E402
from mindspeed_rl.sft.config import SFT_CONFIG_DIR, SFTConfig  # noqa: E402


def build_parser():
    epilog = "config keys (key: default  doc):\n" + "\n".join(
        f"  {k}: {d!r}  {doc}" for k, d, doc in field_docs(SFTConfig))
    parser = config_arg_parser("train_sft.py", __doc__.split("\n\n")[0], default_config="sft_tiny_cpu", epilog=epilog)
    parser.set_defaults(config_dir=str(SFT_CONFIG_DIR))
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    from mindspeed_rl.sft.config import load_sft_config

    cfg = load_sft_config(args.config_name, list(args.overrides), args.config_dir)
    if args.print_config:
        import dataclasses

        import yaml

        print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        return 0
    from mindspeed_rl.sft.data import SFTDataError
    from mindspeed_rl.sft.trainer import run_sft

    try:
        run_sft(cfg)
    except SFTDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run_cli(main)
