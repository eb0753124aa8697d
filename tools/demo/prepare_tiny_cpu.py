#!/usr/bin/env python3
"""Prepare the CPU demo end to end with the suite's real tools:

1. a tiny Qwen2-architecture model and BPE tokenizer (Qwen chat special tokens), random weights;
2. a synthetic dataset, preprocessed by cli/preprocess_data.py: arithmetic with the R1-Zero template
   (--task arith), or solvable Countdown problems with Mini-R1's prompt (--task countdown);
3. the HF model converted to Megatron by tools/convert/convert_ckpt.py;
4. a brief SFT warm start on the Megatron engine, exported to HF and converted again: the actor's
   starting checkpoint for `python cli/train_grpo.py --config-name grpo_tiny_cpu` (grpo_countdown_tiny_cpu).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _arith(seed: int, count: int, args):
    from mindspeed_rl.demo.assets import arithmetic_problems

    return arithmetic_problems(seed, count), arithmetic_problems(seed + 1, 200)


def _countdown(seed: int, count: int, args):
    """Distinct solvable problems (default 2-3 numbers in 1..9, integer targets in 1..50), split into
    train and 100 held-out test problems that never appear in train."""
    from mindspeed_rl.demo.countdown_data import split_countdown_problems

    return split_countdown_problems(count, 100, seed, min_numbers=args.min_numbers, max_numbers=args.max_numbers,
                                    max_number=args.max_number, max_target=args.max_target)


def _countdown_messages(row: dict) -> list[dict]:
    from mindspeed_rl.data.handlers import get_handler

    return get_handler("countdown")(row).messages


TASKS = {
    "arith": dict(work_dir="work_dirs/tiny_cpu", train_rows=2000, sft_steps=300, sft_decay="constant", num_layers=2, problems=_arith, template="qwen_r1", dataset_config="tiny_arith",
                  messages=lambda r: r["problem"]),
    # Countdown: a wide problem set and a long constant-lr warm start, so that the tiny model has the
    # two skills the reward needs before GRPO starts. 1..6 / 30 targets / 500 rows at 600 cosine steps
    # used the given numbers in 26% of its answers and got 4% of its worked steps right: solves were
    # luck and GRPO lowered them. 1..9 / 50 targets / 1,800 rows at 2,000 steps: 47% and 6% with a
    # constant lr (64% and 19% when annealed to lr/20, but then GRPO's first Adam steps at 1e-3 undo it)
    "countdown": dict(work_dir="work_dirs/countdown_tiny_cpu", train_rows=1800, sft_steps=2000, sft_decay="constant",
                      num_layers=4, max_number=9, max_target=50, problems=_countdown, template="qwen_countdown",
                      dataset_config="countdown_tiny", messages=_countdown_messages),
}


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="arith", help="the demo task")
    parser.add_argument("--work-dir", default=None, help="where everything is written (default: per task)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--train-rows", type=int, default=None, help="synthetic training prompts (arith 2000, countdown 1800)")
    parser.add_argument("--sft-steps", type=int, default=None, help="warm-start steps (0: skip; arith 300, countdown 2000)")
    parser.add_argument("--sft-lr-decay", choices=["constant", "cosine"], default=None,
                        help="warm-start learning-rate schedule (constant, or cosine to lr/20)")
    parser.add_argument("--sft-lr", type=float, default=2e-3)
    parser.add_argument("--sft-batch", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=None, help="arith 2, countdown 4")
    parser.add_argument("--min-numbers", type=int, default=2, help="countdown: fewest numbers per problem")
    parser.add_argument("--max-numbers", type=int, default=3, help="countdown: most numbers per problem")
    parser.add_argument("--max-number", type=int, default=None, help="countdown: numbers are drawn from 1..max-number (9)")
    parser.add_argument("--max-target", type=int, default=None, help="countdown: targets are integers in 1..max-target (50)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the work dir is complete")
    args = parser.parse_args()

    from mindspeed_rl.demo.assets import REFERENCE_RESPONSES, build_tiny_model, train_tokenizer, write_jsonl
    from mindspeed_rl.data import load_template

    task = TASKS[args.task]
    args.work_dir = args.work_dir or task["work_dir"]
    args.train_rows = args.train_rows or task["train_rows"]
    args.sft_steps = task["sft_steps"] if args.sft_steps is None else args.sft_steps
    args.sft_lr_decay = args.sft_lr_decay or task["sft_decay"]
    args.num_layers = args.num_layers or task["num_layers"]
    args.max_number = args.max_number or task.get("max_number")
    args.max_target = args.max_target or task.get("max_target")
    work = (ROOT / args.work_dir).resolve() if not os.path.isabs(args.work_dir) else Path(args.work_dir)
    done_marker = work / "PREPARED.json"
    if done_marker.exists() and not args.force:
        print(f"{work} is already prepared (delete it or pass --force to rebuild)")
        return 0
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t0 = time.time()

    # 1. data rows and a tokenizer trained on the rendered template + reference responses
    rows, test_rows = task["problems"](args.seed, args.train_rows, args)
    write_jsonl(rows, work / "data" / "train.jsonl")
    write_jsonl(test_rows, work / "data" / "test.jsonl")
    template = load_template(task["template"])
    respond = REFERENCE_RESPONSES[args.task]
    texts = [template.render(task["messages"](r)) + respond(r, s) for r in rows[:300] for s in range(3)]
    tokenizer = train_tokenizer(texts, work / "hf_init", vocab_size=512)
    build_tiny_model(tokenizer, work / "hf_init", seed=args.seed, hidden_size=args.hidden_size, num_layers=args.num_layers)
    print(f"[1/4] tiny model ({args.hidden_size} hidden, {args.num_layers} layers, vocab {len(tokenizer)}) in {work / 'hf_init'}")

    # 2. the real preprocessor and template
    run([sys.executable, "cli/preprocess_data.py", "--config-name", task["dataset_config"],
         f"input={work / 'data' / 'train.jsonl'}", f"tokenizer_name_or_path={work / 'hf_init'}",
         f"output_prefix={work / 'data' / 'train'}", "overwrite=true"])
    run([sys.executable, "cli/preprocess_data.py", "--config-name", task["dataset_config"],
         f"input={work / 'data' / 'test.jsonl'}", f"tokenizer_name_or_path={work / 'hf_init'}",
         f"output_prefix={work / 'data' / 'test'}", "overwrite=true"])
    print(f"[2/4] preprocessed with template {task['template']}")

    # 3. the real converter
    run([sys.executable, "tools/convert/convert_ckpt.py", "hf2mcore", "--load-dir", str(work / "hf_init"),
         "--save-dir", str(work / "mcore_init"), "--tp", "1", "--pp", "1", "--quiet"])
    print("[3/4] converted HF -> Megatron")

    # 4. SFT warm start on the Megatron engine (in a child process: it owns a torch.distributed world)
    if args.sft_steps > 0:
        run([sys.executable, "-c", (
            "import json, sys; sys.path.insert(0, %r)\n"
            "from mindspeed_rl.data import PromptDataset\n"
            "from mindspeed_rl.demo.warmstart import warm_start\n"
            "rows = [json.loads(l) for l in open(%r)]\n"
            "ds = PromptDataset(%r)\n"
            "prompts = [ds.prompt_ids(i).tolist() for i in range(len(ds))]\n"
            "warm_start(%r, %r, %r, prompts, rows, steps=%d, lr=%r, batch_size=%d, seed=%d, task=%r, lr_decay_style=%r)\n"
        ) % (str(ROOT), str(work / "data" / "train.jsonl"), str(work / "data" / "train"), str(work / "hf_init"),
             str(work / "mcore_init"), str(work / "hf_sft"), args.sft_steps, args.sft_lr, args.sft_batch, args.seed,
             args.task, args.sft_lr_decay)])
        run([sys.executable, "tools/convert/convert_ckpt.py", "hf2mcore", "--load-dir", str(work / "hf_sft"),
             "--save-dir", str(work / "mcore"), "--tp", "1", "--pp", "1", "--quiet"])
        print(f"[4/4] SFT warm start ({args.sft_steps} steps) -> {work / 'mcore'}")
    else:
        shutil.copytree(work / "mcore_init", work / "mcore")
        print("[4/4] no warm start")
    done_marker.write_text(json.dumps({"seconds": round(time.time() - t0, 1), **vars(args)}, indent=1))
    print(f"prepared in {time.time() - t0:.0f}s: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
