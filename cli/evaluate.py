#!/usr/bin/env python3
"""Evaluate a model on MATH-500 / AIME24 / GSM8K / GPQA Diamond or any jsonl/parquet file.

    python cli/evaluate.py --model PATH --dataset math500 --data-path math500_test.jsonl --n 16
    python cli/evaluate.py --config-name aime24 model=PATH dataset.path=aime24.jsonl sampling.seed=1
    python cli/evaluate.py --config-name gpqa_diamond --model PATH dataset.path=gpqa_diamond.csv
    python cli/evaluate.py --config-name r1zero_table --models CKPT/iter_0000030 CKPT/iter_0000060 \
        math500.dataset.path=math500.jsonl aime24.n=4

PATH is a HF model directory, a converted Megatron checkpoint or a GRPO run checkpoint
(megatron_training.save or one of its iter_N directories; converted to HF on the fly). A checkpoint
converted by MindSpeed-LLM (no convert_meta.json) needs --hf-config-dir HF_DIR. Writes
samples.jsonl (resumable: rerun the same command after an interruption), report.json (numbers
and the exact settings) and report.png under output_dir. A table config (r1zero_table) runs
several benchmarks on one or more models and writes table.csv and table.png beside the
per-benchmark outputs.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mindspeed_rl.config.structured import field_docs  # noqa: E402
from mindspeed_rl.evaluation.config import EvalConfig  # noqa: E402
from mindspeed_rl.config.cli import config_arg_parser, run_cli  # noqa: E402

EVAL_CONFIG_DIR = ROOT / "configs" / "eval"

# flag -> config key (the flags are shorthands for key=value overrides; explicit overrides win)
FLAGS = {
    "model": "model", "tokenizer": "tokenizer", "hf_config_dir": "hf_config_dir", "n": "n", "template": "template", "backend": "engine.backend",
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
    parser.add_argument("--model", help="HF model directory, Megatron checkpoint or GRPO run checkpoint")
    parser.add_argument("--models", nargs="+", metavar="PATH",
                        help="table configs: several models / run checkpoints, one table row each "
                             "(arguments with '=' after them are overrides)")
    parser.add_argument("--tokenizer", help="tokenizer directory (default: the model's)")
    parser.add_argument("--hf-config-dir", help="HF model directory whose config.json (and tokenizer) go with a "
                                                "Megatron checkpoint; required for one converted by MindSpeed-LLM "
                                                "(no convert_meta.json)")
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


def _table_data(config_name: str, config_dir) -> dict | None:
    """The raw YAML of ``config_name`` when it is a table config (it has a ``table:`` section)."""
    import yaml

    from mindspeed_rl.evaluation.table import is_table_config

    path = Path(config_dir or EVAL_CONFIG_DIR) / (config_name if config_name.endswith(".yaml") else f"{config_name}.yaml")
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return data if is_table_config(data) else None


def main(argv=None) -> int:
    # intermixed: overrides may come before, between or after the flags
    args = build_parser().parse_intermixed_args(argv)
    if args.models:  # nargs="+" also swallows the overrides that follow; hand them back
        args.overrides = [m for m in args.models if "=" in m] + list(args.overrides)
        args.models = [m for m in args.models if "=" not in m]
    table = _table_data(args.config_name, args.config_dir)
    if table is not None:
        return run_table_cli(args, table)
    if args.models:
        from mindspeed_rl.config.errors import ConfigError, Problem

        raise ConfigError([Problem("--models", args.models, "only table configs take several models",
                                   "use --model PATH, or --config-name r1zero_table")])
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
    evaluate_model(cfg.model, [cfg])
    return 0


def evaluate_model(model_path: str, cfgs: list) -> list:
    """Run the evaluations ``cfgs`` (one model, any datasets) on one loaded / converted model;
    returns their reports. The table runs its cells through here as the single run does."""
    import dataclasses

    from mindspeed_rl.evaluation.datasets import load_problems
    from mindspeed_rl.evaluation.model_source import hf_model_dir
    from mindspeed_rl.evaluation.runner import evaluate

    datasets = [load_problems(cfg.dataset) for cfg in cfgs]  # fail on data problems before loading any weights
    from mindspeed_rl.data.readers import InputError
    from mindspeed_rl.evaluation.runner import default_output_dir
    from mindspeed_rl.utils.fs import check_output_dir

    for cfg in cfgs:
        unwritable = check_output_dir(cfg.output_dir or default_output_dir(cfg), "output_dir")
        if unwritable:  # found before any weights load or convert
            raise InputError(f"{unwritable}; pass --output-dir <a writable directory>")
    tokenizers = {cfg.tokenizer for cfg in cfgs}
    if len(tokenizers) > 1:
        from mindspeed_rl.config.errors import ConfigError, Problem

        raise ConfigError([Problem("tokenizer", sorted(map(str, tokenizers)), "differs between the benchmarks of one model",
                                   "set one tokenizer for all of them")])
    reports = []
    hf_config_dirs = {cfg.hf_config_dir for cfg in cfgs}
    if len(hf_config_dirs) > 1:
        from mindspeed_rl.config.errors import ConfigError, Problem

        raise ConfigError([Problem("hf_config_dir", sorted(map(str, hf_config_dirs)),
                                   "differs between the benchmarks of one model", "set one hf_config_dir for all of them")])
    with hf_model_dir(model_path, tokenizer=cfgs[0].tokenizer, hf_config_dir=cfgs[0].hf_config_dir) as model:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model["tokenizer"])
        engines: dict = {}
        try:
            for cfg, dataset in zip(cfgs, datasets):
                key = repr((dataclasses.asdict(cfg.engine), cfg.sampling.seed if cfg.engine.backend == "vllm" else None))
                if key not in engines:
                    engines[key] = build_engine(cfg, model["hf_dir"])
                reports.append(evaluate(engines[key], tokenizer, cfg, dataset,
                                        model_info={k: v for k, v in model.items() if k not in ("hf_dir",)}))
        finally:
            for engine in engines.values():
                engine.shutdown()
    return reports


def run_table_cli(args, data: dict) -> int:
    from mindspeed_rl.config.errors import ConfigError, Problem
    from mindspeed_rl.evaluation.table import parse_table_spec, run_table

    source = f"eval table config '{args.config_name}'"
    spec = parse_table_spec(data, source)
    models = list(args.models or []) + ([args.model] if args.model else [])
    if args.print_config:  # each benchmark's resolved settings (what its cells run with)
        import dataclasses

        import yaml

        from mindspeed_rl.evaluation.table import split_overrides

        common, own = split_overrides(flag_overrides(args) + list(args.overrides), [b.id for b in spec.benchmarks])
        for b in spec.benchmarks:
            cfg = load_eval_config(b.config, [*b.overrides, *common, *own[b.id]], args.config_dir)
            print(f"# {b.id}: {b.label} {b.metric}\n" + yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        return 0
    problems = []
    if not models:
        problems.append(Problem("--models", None, "no model given", "pass --model PATH or --models PATH [PATH ...]"))
    for flag, value in (("--dataset", args.dataset), ("--data-path", args.data_path)):
        if value:
            problems.append(Problem(flag, value, "a table has its own datasets",
                                    "set <benchmark>.dataset.path=FILE (e.g. math500.dataset.path=math500.jsonl)"))
    if problems:
        raise ConfigError(problems, source)
    flags = [o for o in flag_overrides(args) if not o.startswith(("model=", "output_dir="))]
    output_dir = args.output_dir or data.get("output_dir") or os.path.join("outputs", "eval", spec.name)
    chart = bool(data.get("chart", True))
    run_table(spec, models, flags + list(args.overrides), output_dir,
              lambda name, overrides: load_eval_config(name, overrides, args.config_dir), evaluate_model, chart=chart)
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
