#!/usr/bin/env python3
"""Solve rate of a countdown demo model on its held-out problems (data/test.jsonl), scored by the
real ``countdown_acc`` reward on Mini-R1's prompts: greedy pass@1, and the sampled solve rate with
the share of problems whose n samples are all wrong (a GRPO group with no signal), and of the
sampled answers, the share that use exactly the given numbers and the share whose worked steps are
arithmetically right (a solve rate GRPO can raise needs those skills: without them solves are luck).

    python3 tools/demo/countdown_probe.py [--model work_dirs/countdown_tiny_cpu/hf_sft] [--n 8]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


STEP = re.compile(r"(\d+)\s*([-+*/])\s*(\d+)\s*=\s*(\d+)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
       "/": lambda a, b: a / b if b else None}


def answer_skill(response: str, numbers: list[int]) -> tuple[bool, bool]:
    """(the last answer equation uses exactly ``numbers``, every ``a op b = c`` step before
    ``</think>`` is right and there is at least one)."""
    from mindspeed_rl.rewards.functions import evaluate_countdown_equation

    blocks = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
    uses = False
    if blocks:
        value, used = evaluate_countdown_equation(blocks[-1])
        uses = value is not None and sorted(used) == sorted(int(n) for n in numbers)
    steps = STEP.findall(response.split("</think>")[0])
    right = bool(steps) and all(OPS[op](Fraction(a), Fraction(b)) == Fraction(c) for a, op, b, c in steps)
    return uses, right


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="work_dirs/countdown_tiny_cpu/hf_sft", help="HF model directory")
    parser.add_argument("--test", default=None, help="problems (default: <model>/../data/test.jsonl)")
    parser.add_argument("--n", type=int, default=8, help="samples per problem at temperature 1")
    parser.add_argument("--max-problems", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mindspeed_rl.data import load_template
    from mindspeed_rl.data.handlers import get_handler
    from mindspeed_rl.rewards.functions import countdown_accuracy

    model_dir = Path(args.model)
    test = Path(args.test) if args.test else model_dir.parent / "data" / "test.jsonl"
    if not test.exists():
        raise SystemExit(f"{test} not found: prepare the demo first (tools/demo/prepare_tiny_cpu.py --task countdown)")
    rows = [json.loads(line) for line in test.read_text().splitlines() if line.strip()][: args.max_problems]
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    template, handler = load_template("qwen_countdown"), get_handler("countdown")
    prompts = [template.render(handler(r).messages) for r in rows]
    end = tok.convert_tokens_to_ids("<|im_end|>")

    def solve_rates(n: int, greedy: bool) -> tuple[list[float], list[tuple[bool, bool]]]:
        """Per-problem solve rates, and ``answer_skill`` of every answer."""
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(0)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=args.max_tokens, do_sample=not greedy, temperature=None if greedy else 1.0,
                                 top_p=None, top_k=None, num_return_sequences=n, eos_token_id=end, pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        golds = [json.dumps({"target": r["target"], "numbers": r["nums"]}) for r in rows]
        scores = [countdown_accuracy(t, golds[i // n]) for i, t in enumerate(texts)]
        skills = [answer_skill(t, rows[i // n]["nums"]) for i, t in enumerate(texts)]
        return [sum(scores[i * n:(i + 1) * n]) / n for i in range(len(rows))], skills

    greedy, _ = solve_rates(1, True)
    sampled, skills = solve_rates(args.n, False)  # the skill shares are over the sampled answers
    print(json.dumps({"model": str(model_dir), "problems": len(rows), "greedy_pass@1": round(sum(greedy) / len(rows), 3),
                      f"sampled_solve_rate_n{args.n}": round(sum(sampled) / len(rows), 3),
                      "all_wrong_groups": round(sum(s == 0 for s in sampled) / len(rows), 3),
                      "all_right_groups": round(sum(s == 1 for s in sampled) / len(rows), 3),
                      "sampled_uses_the_numbers": round(sum(u for u, _ in skills) / len(skills), 3),
                      "sampled_steps_right": round(sum(r for _, r in skills) / len(skills), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
