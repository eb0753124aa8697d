#!/usr/bin/env python3
"""Evaluate a model on MATH-500 / AIME24 / GSM8K or any jsonl/parquet file.

    python cli/evaluate.py --model PATH --dataset math500 --data-path math500_test.jsonl --n 16
    python cli/evaluate.py --config-name aime24 model=PATH dataset.path=aime24.jsonl sampling.seed=1

PATH is a HF model directory or a Megatron checkpoint (converted to HF on the fly). Writes
samples.jsonl (resumable: rerun the same command after an interruption), report.json (numbers
and the exact settings) and report.png under output_dir.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mindspeed_rl.config.structured import field_docs  # noqa: E402
from mindspeed_rl.evaluation.config import EvalConfig  # noqa: E402
from mindspeed_rl.utils.cli import config_arg_parser, run_cli  # noqa: E402

EVAL_CONFIG_DIR = ROOT / "configs" / "eval"

# flag -> config key (the flags are shorthands for key=value overrides; explicit overrides win)
FLAGS = {
    "model": "model", "tokenizer": "tokenizer", "n": "n", "template": "template", "backend": "engine.backend",
    "dtype": "engine.dtype", "data_path": "dataset.path", "max_problems": "dataset.max_problems",
    "max_tokens": "sampling.max_tokens", "temperature": "sampling.temperature", "top_p": "sampling.top_p",
    "seed": "sampling.seed", "batch_size": "batch_size", "output_dir": "output_dir",
}


def _epilog() -> str:
    lines = ["config keys (key: default  doc):"]
    for key, default, doc in field_docs(EvalConfig):
        lines.append(f"  {key}: {default!r}  {doc}")
    return "\n".join(lines)


def build_parser():
    parser = config_arg_parser("evaluate.py", __doc__.split("\n\n")[0], default_config="default", epilog=_epilog())
    parser.set_defaults(config_dir=str(EVAL_CONFIG_DIR))
    parser.add_argument("--model", help="HF model directory or Megatron checkpoint")
    parser.add_argument("--tokenizer", help="tokenizer directory (default: the model's)")
    parser.add_argument("--dataset", help="math500, aime24, gsm8k, or a json/jsonl/parquet file "
                                          "(then set dataset.problem_key / dataset.answer_key)")
    parser.add_argument("--data-path", help="the preset's file (default: under $MINDSPEED_RL_DATA_DIR)")
    parser.add_argument("--n", type=int, help="samples per problem")
    parser.add_argument("--template", help="chat template in configs/model/templates.json (e.g. qwen_r1)")
    parser.add_argument("--backend", choices=["hf", "vllm"], help="rollout engine")
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"])
    parser.add_argument("--max-problems", type=int)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--batch-size", type=int, help="problems per generate call (and per resume checkpoint)")
    parser.add_argument("--output-dir")
    parser.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return parser


def flag_overrides(args) -> list[str]:
    out = []
    if args.dataset:
        from mindspeed_rl.evaluation.datasets import PRESETS

        if args.dataset in PRESETS:
            out.append(f"dataset.name={args.dataset}")
        else:  # a file: named after it, keys from dataset.*_key overrides
            out += [f"dataset.name={Path(args.dataset).stem}", f"dataset.path={args.dataset}"]
    for flag, key in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            out.append(f"{key}={value}")
    if args.overwrite:
        out.append("overwrite=true")
    return out


def load_eval_config(config_name: str, overrides: list[str], config_dir=None) -> EvalConfig:
    from mindspeed_rl.config.loader import compose_dict
    from mindspeed_rl.config.structured import from_dict
    from mindspeed_rl.evaluation.config import check_eval_config

    # "++": add-or-override, so keys absent from the YAML work; unknown keys are caught by from_dict
    # (with a did-you-mean) instead of Hydra's struct error.
    forced = [o if o.startswith(("+", "~")) or "=" not in o else f"++{o}" for o in overrides]
    data = compose_dict(config_name, forced, config_dir or EVAL_CONFIG_DIR)
    source = f"eval config '{config_name}'"
    return check_eval_config(from_dict(EvalConfig, data, source=source), source)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_eval_config(args.config_name, flag_overrides(args) + list(args.overrides), args.config_dir)
    if args.print_config:
        import dataclasses

        import yaml

        print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        return 0
    if not cfg.model:
        from mindspeed_rl.config.errors import ConfigError, Problem

        raise ConfigError([Problem("model", None, "no model given", "pass --model PATH or model=PATH")])
    from mindspeed_rl.data.readers import InputError
    from mindspeed_rl.data.templates import TemplateError
    from mindspeed_rl.evaluation.model_source import ModelSourceError
    from mindspeed_rl.evaluation.records import ResumeError
    from mindspeed_rl.models.errors import ModelsError

    try:
        return run(cfg)
    except (InputError, TemplateError, ModelSourceError, ResumeError, ModelsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(cfg: EvalConfig) -> int:
    from mindspeed_rl.evaluation.datasets import load_problems
    from mindspeed_rl.evaluation.model_source import hf_model_dir
    from mindspeed_rl.evaluation.runner import evaluate

    dataset = load_problems(cfg.dataset)  # fail on data problems before loading any weights
    from mindspeed_rl.data.readers import InputError
    from mindspeed_rl.evaluation.runner import default_output_dir
    from mindspeed_rl.utils.fs import check_output_dir

    unwritable = check_output_dir(cfg.output_dir or default_output_dir(cfg), "output_dir")
    if unwritable:  # found before any weights load or convert
        raise InputError(f"{unwritable}; pass --output-dir <a writable directory>")
    with hf_model_dir(cfg.model, tokenizer=cfg.tokenizer) as model:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model["tokenizer"])
        engine = build_engine(cfg, model["hf_dir"])
        try:
            evaluate(engine, tokenizer, cfg, dataset,
                     model_info={k: v for k, v in model.items() if k not in ("hf_dir",)})
        finally:
            engine.shutdown()
    return 0


def build_engine(cfg: EvalConfig, hf_dir: str):
    from mindspeed_rl.engine.rollout import build_rollout_engine

    e = cfg.engine
    if e.backend == "hf":
        return build_rollout_engine("hf", model_path=hf_dir, dtype=None if e.dtype == "auto" else e.dtype,
                                    max_batch_size=e.max_batch_size)
    return build_rollout_engine("vllm", model_path=hf_dir, tensor_parallel_size=e.tensor_parallel_size,
                                dtype=e.dtype, gpu_memory_utilization=e.gpu_memory_utilization,
                                max_model_len=e.max_model_len, seed=cfg.sampling.seed, enable_sleep_mode=False,
                                distributed_executor_backend=None)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_cli(main)
