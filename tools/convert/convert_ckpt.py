#!/usr/bin/env python3
"""Convert checkpoints between Hugging Face safetensors and Megatron (any TP/PP).

  python tools/convert/convert_ckpt.py hf2mcore --load-dir HF_DIR --save-dir MG_DIR --tp 8 --pp 2 \
      [--num-layer-list 13,15] [--params-dtype bf16] [--overwrite]
  python tools/convert/convert_ckpt.py mcore2hf --load-dir MG_DIR --save-dir HF_OUT \
      [--iteration N] [--hf-config-dir HF_DIR] [--dtype bf16] [--max-shard-size 5GB] [--overwrite]

mcore2hf reads a converted checkpoint (hf2mcore output), a GRPO run checkpoint
(megatron_training.save, or one of its iter_N directories) or, with --hf-config-dir, a checkpoint
converted by MindSpeed-LLM (legacy iter_N/ or release/ mp_rank_* files, no convert_meta.json) at
the TP/PP layout it was written with, and writes safetensors with config, tokenizer and
generation config.

Thin over mindspeed_rl.models (name maps, layouts, formats); see its docstring for the format.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer counts like 13,15, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convert_ckpt.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="direction", required=True)

    a = sub.add_parser("hf2mcore", help="Hugging Face safetensors -> Megatron rank files")
    a.add_argument("--load-dir", required=True, help="HF model directory (config.json + *.safetensors)")
    a.add_argument("--save-dir", required=True, help="Megatron checkpoint directory to create")
    a.add_argument("--tp", type=int, default=1, help="tensor parallel size")
    a.add_argument("--pp", type=int, default=1, help="pipeline parallel size")
    a.add_argument("--num-layer-list", type=_int_list, default=None,
                   help="layers per pipeline stage, e.g. 13,15 (default: even split)")
    a.add_argument("--params-dtype", choices=["bf16", "fp16", "fp32"], default=None,
                   help="dtype of the Megatron weights (default: the HF checkpoint's)")
    a.add_argument("--make-vocab-size-divisible-by", type=int, default=128,
                   help="vocab is padded to a multiple of this times TP (Megatron's rule)")

    b = sub.add_parser("mcore2hf", help="Megatron rank files -> Hugging Face sharded safetensors")
    b.add_argument("--load-dir", required=True,
                   help="converted Megatron checkpoint (with convert_meta.json), a GRPO run's megatron_training.save "
                        "directory, one of its iter_N directories, or a MindSpeed-LLM / Megatron legacy checkpoint "
                        "(iter_N/ or release/ with mp_rank_*; needs --hf-config-dir)")
    b.add_argument("--save-dir", required=True, help="HF model directory to create")
    b.add_argument("--hf-config-dir", "--hf-config", dest="hf_config_dir", default=None,
                   help="take config.json and tokenizer files from here (default: the copy stored in the checkpoint); "
                        "required for a checkpoint converted by MindSpeed-LLM (no convert_meta.json)")
    b.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None, help="output dtype (default: as stored)")
    b.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard, e.g. 5GB, 500MB")
    b.add_argument("--iteration", type=int, default=None,
                   help="which iter_N to export (a run checkpoint: the training iteration); "
                        "default: latest_checkpointed_iteration.txt")

    for s in (a, b):
        s.add_argument("--overwrite", action="store_true", help="replace a non-empty --save-dir")
        s.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from mindspeed_rl.models import ModelsError
    from mindspeed_rl.models.convert import hf_to_mcore, mcore_to_hf

    try:
        if args.direction == "hf2mcore":
            meta = hf_to_mcore(args.load_dir, args.save_dir, tp=args.tp, pp=args.pp,
                               num_layer_list=args.num_layer_list, params_dtype=args.params_dtype,
                               make_vocab_size_divisible_by=args.make_vocab_size_divisible_by,
                               overwrite=args.overwrite, quiet=args.quiet)
            print(f"wrote {args.save_dir}: {meta['architecture']} tp={meta['tp']} pp={meta['pp']} "
                  f"layers/stage={meta['num_layer_list']} padded_vocab={meta['padded_vocab_size']} "
                  f"dtype={meta['params_dtype']}")
        else:
            out = mcore_to_hf(args.load_dir, args.save_dir, hf_config_dir=args.hf_config_dir, dtype=args.dtype,
                              max_shard_size=args.max_shard_size, iteration=args.iteration,
                              overwrite=args.overwrite, quiet=args.quiet)
            print(f"read {out['source']}")
            print(f"wrote {args.save_dir}: {out['shards']} safetensors shard(s), {out['bytes'] / 2**20:.1f} MiB "
                  f"{out['dtype']}, copied {out['side_files']}")
    except ModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
