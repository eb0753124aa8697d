"""Evaluation-loop overhead: ``evaluate()`` against the bare ``engine.generate`` it wraps.

    python3 benchmarks/evaluate.py [--problems 8 --n 2 --max-tokens 32 --batch-size 4 --workers 2]

Same tiny random Qwen2 (real Qwen2 tokenizer), same MATH-500 problems, same prompts, sampling and
seeds in both arms; measured interleaved in one run (median of --repeats). ``evaluate`` adds
prompt rendering, tokenising, decoding, scoring in the hard-timeout pool, the fsync'd per-sample
file, metrics and report.json; the ratio says what that costs on top of generation. The chart is
off (matplotlib start-up is a one-off).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="scorer processes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer

    from mindspeed_rl.data import load_template
    from mindspeed_rl.engine.rollout import build_rollout_engine
    from mindspeed_rl.evaluation import EvalConfig, Judge, evaluate, load_problems
    from mindspeed_rl.evaluation.config import DatasetConfig, EvalSamplingConfig, ScorerConfig
    from mindspeed_rl.data.templates import stop_token_ids
    from mindspeed_rl.evaluation.runner import batch_seed, batches, render_prompts, sampling_params
    from tests.evaluation.eval_testlib import MATH500_SLICE, save_tiny_qwen2

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    try:
        hf = save_tiny_qwen2(str(work / "hf"))
        tok = AutoTokenizer.from_pretrained(hf)
        engine = build_rollout_engine("hf", model_path=hf, max_batch_size=64)
        cfg = EvalConfig(model=hf, n=args.n, batch_size=args.batch_size, chart=False, overwrite=True,
                         output_dir=str(work / "out"),
                         dataset=DatasetConfig(name="math500", path=str(MATH500_SLICE), max_problems=args.problems),
                         sampling=EvalSamplingConfig(temperature=1.0, top_p=1.0, max_tokens=args.max_tokens, seed=0),
                         scorer=ScorerConfig(num_workers=args.workers))
        dataset = load_problems(cfg.dataset)
        template = load_template(cfg.template)
        stop_ids = stop_token_ids(template, tok)
        plan = [(b, [tok.encode(t, add_special_tokens=False) for t in render_prompts(b, template)])
                for b in batches(dataset.problems, cfg.batch_size)]

        def bare():
            tokens = 0
            for b, ids in plan:
                for group in engine.generate(ids, sampling_params(cfg, batch_seed(0, b[0].index), stop_ids)):
                    tokens += sum(len(o.token_ids) for o in group)
            return tokens

        judge = Judge(cfg.scorer, template.stop_words)  # started once, as the trainer's Validator does
        judge.judge(["\\boxed{1}"], ["1"])
        bare()  # warm-up
        t_bare, t_eval = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            tokens = bare()
            t_bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            evaluate(engine, tok, cfg, dataset, judge=judge, log=lambda s: None)
            t_eval.append(time.perf_counter() - t0)
        judge.close()
        b, e = statistics.median(t_bare), statistics.median(t_eval)
        samples = args.problems * args.n
        print(f"{args.problems} problems x n={args.n}, max_tokens={args.max_tokens}, batch_size={args.batch_size}, "
              f"{tokens} generated tokens, scorer workers={args.workers}, torch threads={args.threads}")
        print(f"bare engine.generate : {b:7.3f} s  ({samples / b:7.1f} samples/s)")
        print(f"evaluate()           : {e:7.3f} s  ({samples / e:7.1f} samples/s)")
        print(f"overhead ratio       : {e / b:7.3f}x  ({1000 * (e - b) / samples:.2f} ms per sample)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
