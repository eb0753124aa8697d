#!/usr/bin/env python3
"""Rejection sampling (Open-R1's generate step): n samples per problem, keep the verified ones as SFT data.

    python cli/generate.py --model PATH --data problems.jsonl --output traces.jsonl --n 8
    python cli/generate.py --model CKPT --dataset math500 --output math.parquet --n 16 --keep-shortest 2 --backend vllm
    python cli/generate.py ... --resume            # continue after the last finished problem

PATH is a HF model directory, a converted Megatron checkpoint or an SFT/GRPO run checkpoint
(converted to HF on the fly). Prompts are rendered with --template; samples are scored with the
suite's RewardScorer (--functions); a sample is kept when every --require reward is 1 (default: acc
and format), optionally only the --keep-shortest k per problem. Writes rows {prompt, response, gold,
score, problem_id, ...} as jsonl (or parquet by suffix) and <output>.summary.json with the kept
fraction per problem and overall. An existing --output is refused unless --resume.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_parser():
    p = argparse.ArgumentParser(prog="generate.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF model directory, Megatron checkpoint or run checkpoint")
    p.add_argument("--tokenizer", help="tokenizer directory (default: the model's)")
    p.add_argument("--hf-config-dir", help="HF config + tokenizer directory for a checkpoint without hf_config/")
    p.add_argument("--data", help="problems file (json/jsonl/parquet); or --dataset")
    p.add_argument("--dataset", default=None, help="preset (math500, aime24, gsm8k) or a name for --data")
    p.add_argument("--problem-key", default=None, help="column of the problem text (default: the preset's / 'problem')")
    p.add_argument("--answer-key", default=None, help="column of the gold answer (default: the preset's / 'answer')")
    p.add_argument("--id-key", default=None, help="column of a stable problem id (default: the row index)")
    p.add_argument("--max-problems", type=int, default=None)
    p.add_argument("--output", required=True, help="out.jsonl or out.parquet")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run with the same settings")
    p.add_argument("--n", type=int, default=8, help="samples per problem")
    p.add_argument("--template", default="qwen_r1", help="chat template (configs/model/templates.json)")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    p.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.85, help="vllm")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16, help="problems per generate call (and per resume unit)")
    p.add_argument("--functions", default="acc,format", help="reward functions scored (comma list; name:weight)")
    p.add_argument("--require", default="acc,format", help="rewards that must be 1 for a sample to be kept")
    p.add_argument("--keep-shortest", type=int, default=0, help="keep only the k shortest passing samples per problem")
    p.add_argument("--num-workers", type=int, default=2, help="scorer processes")
    return p


def _settings(args, model_info, dataset) -> dict:
    keys = ("n", "template", "backend", "dtype", "temperature", "top_p", "max_tokens", "seed", "batch_size",
            "functions", "require", "keep_shortest", "problem_key", "answer_key", "id_key", "max_problems")
    out = {k: getattr(args, k) for k in keys}
    out.update(model=os.path.abspath(args.model), weights=model_info.get("weights"), data=dataset.files,
               data_fingerprint=getattr(dataset, "fingerprint", None))
    return out


def _dataset_config(args):
    from mindspeed_rl.evaluation.config import DatasetConfig

    if not args.data and not args.dataset:
        raise SystemExit("error: give --data FILE (with --problem-key/--answer-key) or --dataset PRESET")
    name = args.dataset or "problems"
    own = args.dataset is None or args.dataset not in ("math500", "aime24", "gsm8k")
    return DatasetConfig(name=name, path=args.data, problem_key=args.problem_key or ("problem" if own else None),
                         answer_key=args.answer_key or ("answer" if own else None), id_key=args.id_key,
                         max_problems=args.max_problems)


def _engine(args, hf_dir):
    from mindspeed_rl.engine.rollout import build_rollout_engine

    if args.backend == "hf":
        return build_rollout_engine("hf", model_path=hf_dir, dtype=None if args.dtype == "auto" else args.dtype)
    return build_rollout_engine("vllm", model_path=hf_dir, tensor_parallel_size=args.tensor_parallel_size,
                                dtype=args.dtype, gpu_memory_utilization=args.gpu_memory_utilization,
                                max_model_len=args.max_model_len, seed=args.seed, enable_sleep_mode=False,
                                distributed_executor_backend=None)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from mindspeed_rl.data import load_template, stop_token_ids
    from mindspeed_rl.engine.rollout import SamplingParams
    from mindspeed_rl.evaluation.datasets import load_problems
    from mindspeed_rl.evaluation.model_source import hf_model_dir
    from mindspeed_rl.evaluation.runner import batch_seed
    from mindspeed_rl.rewards import RewardScorer
    from mindspeed_rl.rewards.scorer import parse_weighted_names
    from mindspeed_rl.sft.rejection import GenerateError, KeepRule, ResumableOutput, kept_samples

    functions, weights = parse_weighted_names([f for f in args.functions.split(",") if f])
    rule = KeepRule(require=tuple(f for f in args.require.split(",") if f), keep_shortest=args.keep_shortest)
    missing = [r for r in rule.require if r not in functions]
    if missing or args.n < 1 or args.batch_size < 1:
        print(f"error: --require {missing} must be among --functions {functions}; --n and --batch-size >= 1",
              file=sys.stderr)
        return 2
    dataset = load_problems(_dataset_config(args))  # data problems before any weights load
    template = load_template(args.template)
    with hf_model_dir(args.model, tokenizer=args.tokenizer, hf_config_dir=args.hf_config_dir) as model:
        settings = _settings(args, model, dataset)
        try:
            out = ResumableOutput(args.output, settings, args.resume)
        except GenerateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model["tokenizer"])
        stop = stop_token_ids(template, tokenizer)
        problems = dataset.problems
        todo = [problems[i:i + args.batch_size] for i in range(0, len(problems), args.batch_size)]
        todo = [b for b in todo if not all(p.index in out.done for p in b)]
        print(f"generate: {len(problems)} problems x {args.n}, {len(out.done)} done, {len(todo)} batches to go",
              flush=True)
        engine = _engine(args, model["hf_dir"]) if todo else None
        with RewardScorer(functions, weights, num_workers=args.num_workers) as scorer:
            for batch in todo:
                t0 = time.perf_counter()
                prompts = [template.render(p.problem) for p in batch]
                sampling = SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p,
                                          max_tokens=args.max_tokens, stop_token_ids=stop, logprobs=False,
                                          seed=batch_seed(args.seed, batch[0].index))
                groups = engine.generate([tokenizer.encode(t, add_special_tokens=False) for t in prompts], sampling)
                samples = []
                for p, group in zip(batch, groups):
                    for o in sorted(group, key=lambda o: o.sample_index):
                        samples.append({"problem_index": p.index, "problem_id": p.id, "sample_index": o.sample_index,
                                        "prompt": p.problem, "gold": p.answer, "finish_reason": o.finish_reason,
                                        "response_tokens": len(o.token_ids),
                                        "response": tokenizer.decode(o.token_ids, skip_special_tokens=True)})
                totals, per_fn, _ = scorer.score([s["response"] for s in samples], [s["gold"] for s in samples])
                for i, s in enumerate(samples):
                    s["score"] = totals[i]
                    s["rewards"] = {name: per_fn[name][i] for name in functions}
                rows, progress = [], []
                for p in batch:
                    mine = [s for s in samples if s["problem_index"] == p.index]
                    keep = kept_samples(mine, rule)
                    rows += keep
                    progress.append({"problem_index": p.index, "problem_id": p.id, "generated": len(mine),
                                     "kept": len(keep), "correct": sum(s["rewards"].get("acc", 0.0) >= 1.0 for s in mine)})
                out.append_batch(rows, progress)
                print(f"  problems {batch[0].index}..{batch[-1].index}: kept {len(rows)}/{len(samples)} "
                      f"({time.perf_counter() - t0:.1f}s)", flush=True)
        if engine is not None:
            engine.shutdown()
        summary = out.finish(settings)
    print(f"kept {summary['kept']}/{summary['generated']} samples ({summary['kept_fraction']:.3f}); "
          f"{summary['problems_with_a_kept_sample']}/{summary['problems']} problems have one -> {out.path}, "
          f"{out.summary_path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
