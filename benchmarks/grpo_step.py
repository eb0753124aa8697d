"""Seconds per GRPO iteration and where they go: our trainer vs TRL's ``GRPOTrainer``, same run.

Both sides train the same tiny random Qwen2 model (built here, nothing downloaded) on the same
rendered ``qwen_r1`` prompts with the same tokenizer, prompts per iteration, samples per prompt
(n), max new tokens, sampling (temperature 1), reward (``mindspeed_rl.rewards`` ``acc`` through a
``RewardScorer`` with the same worker count), KL coefficient (k3 / low_var_kl estimator in the
loss, so both run a reference forward), learning rate (constant), clipping (0.2, grad norm 1.0),
one optimizer step per iteration and fp32 on CPU. The first ``--warmup`` iterations are
left out of the averages on both sides.

Ours is the full production path: Ray driver + actor/rollout worker (Megatron engine for the
update and log-probs, HF rollout engine for generation, weight sync between them) + reward worker.
Phases are our ``timing/*`` metrics; TRL's are measured by wrapping its own methods
(see ``benchmarks/_grpo_step_trl.py``).

    python3 benchmarks/grpo_step.py                                  # ~2-4 minutes on 2 cores
    python3 benchmarks/grpo_step.py --iters 6 --prompts 4 --n 8 --max-tokens 64 --hidden 128
    python3 benchmarks/grpo_step.py --only ours                      # one side only
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PHASES = ("rollout", "reward", "reference", "old_log_p", "update", "weight_sync", "other", "all")


# ---- assets ---------------------------------------------------------------------------------
def build_assets(work: Path, args) -> dict:
    """Tokenizer, HF model, preprocessed prompts and the converted Megatron checkpoint."""
    from mindspeed_rl.data import load_template
    from mindspeed_rl.data.preprocess import PreprocessConfig, preprocess
    from mindspeed_rl.demo.assets import arithmetic_problems, build_tiny_model, reference_response, train_tokenizer, write_jsonl
    from mindspeed_rl.models.convert import hf_to_mcore

    rows = arithmetic_problems(args.seed, max(64, args.prompts * args.iters))
    write_jsonl(rows, work / "train.jsonl")
    template = load_template("qwen_r1")
    texts = [template.render(r["problem"]) + reference_response(r) for r in rows[:40]]
    tokenizer = train_tokenizer(texts, work / "hf", vocab_size=320)
    build_tiny_model(tokenizer, work / "hf", seed=args.seed, hidden_size=args.hidden, num_layers=args.layers,
                     max_position_embeddings=args.max_len)
    preprocess(PreprocessConfig(input=str(work / "train.jsonl"), handler="flat",
                                map_keys={"prompt": "problem", "response": "answer"}, template="qwen_r1",
                                tokenizer_name_or_path=str(work / "hf"), output_prefix=str(work / "data" / "train"),
                                max_prompt_length=args.max_len - args.max_tokens, workers=1, progress=False),
               log=lambda *a, **k: None)
    hf_to_mcore(str(work / "hf"), str(work / "mcore"), tp=1, pp=1, quiet=True)
    from mindspeed_rl.data.templates import stop_token_ids

    return {
        "prompts": [template.render(r["problem"]) for r in rows],
        "answers": [r["answer"] for r in rows],
        "stop_ids": stop_token_ids(template, tokenizer),
        "prompt_tokens": statistics.mean(len(tokenizer(template.render(r["problem"]))["input_ids"]) for r in rows),
    }


# ---- our trainer ----------------------------------------------------------------------------
def run_ours(work: Path, args) -> dict:
    from mindspeed_rl.config import load_config
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    rows = args.prompts * args.n
    cfg = load_config("grpo_tiny_cpu", [
        f"megatron_training.tokenizer_name_or_path={work / 'hf'}",
        f"megatron_training.data_path={work / 'data' / 'train'}",
        f"megatron_training.log_dir={work / 'runs'}", f"megatron_training.seed={args.seed}",
        "megatron_training.save=", "megatron_training.save_interval=0",
        f"megatron_training.global_batch_size={args.prompts}", f"megatron_training.train_iters={args.iters}",
        f"megatron_training.seq_length={args.max_len}",
        f"megatron_training.max_prompt_length={args.max_len - args.max_tokens}",
        # the architecture is read from work/hf/config.json
        f"rl_config.n_samples_per_prompt={args.n}", f"rl_config.kl_coef={args.kl_coef}",
        "rl_config.kl_estimator=low_var_kl", "rl_config.use_kl_in_reward=false", "rl_config.clip_ratio=0.2",
        "rl_config.loss_agg_mode=token-mean", "rl_config.advantage_estimator=grpo",
        "rl_config.verifier_function=[acc]", "rl_config.verifier_weight=[1.0]",
        f"rl_config.verifier_num_workers={args.reward_workers}",
        "rl_config.save_samples_interval=0", "rl_config.test_freq=0", "rl_config.test_before_train=false",
        "rl_config.val_datasets=[]",
        # one optimizer step per iteration over the whole batch, one micro-batch (as TRL does here)
        f"actor_config.micro_batch_size={rows}", f"actor_config.mini_batch_size={args.prompts}",
        f"actor_config.lr={args.lr}", "actor_config.lr_decay_style=constant", "actor_config.clip_grad=1.0",
        f"ref_config.micro_batch_size={rows}",
        f"actor_config.load={work / 'mcore'}", f"ref_config.load={work / 'mcore'}",
        f"generate_config.sampling_config.max_tokens={args.max_tokens}",
        "generate_config.sampling_config.temperature=1.0", f"generate_config.max_model_len={args.max_len}",
    ])
    os.environ["MINDSPEED_RL_THREADS_PER_WORKER"] = str(args.threads)
    t = time.perf_counter()
    trainer = GRPOTrainer(cfg)
    setup_s = time.perf_counter() - t
    try:
        t = time.perf_counter()
        history = trainer.fit()["history"]
        train_s = time.perf_counter() - t
    finally:
        trainer.shutdown()
        import ray

        ray.shutdown()
    steps = []
    for m in history:
        rec = {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("timing/")}
        rec["generated_tokens"] = m["response_length/mean"] * rows
        steps.append(rec)
    return {"steps": steps, "setup_s": setup_s, "train_s": train_s,
            "rewards": [m["reward/mean"] for m in history], "has_reference": True}


# ---- report ---------------------------------------------------------------------------------
def summarise(result: dict, warmup: int) -> dict:
    steps = result["steps"][warmup:] or result["steps"]
    out = {}
    for phase in PHASES:
        if phase == "other":
            continue
        out[phase] = statistics.mean(s.get(phase, 0.0) for s in steps)
    out["other"] = out["all"] - sum(out[p] for p in PHASES if p not in ("other", "all"))
    out["tokens"] = statistics.mean(s.get("generated_tokens", float("nan")) for s in steps)
    out["iters"] = len(steps)
    return out


def print_report(args, assets: dict, results: dict) -> None:
    sums = {name: summarise(r, args.warmup) for name, r in results.items()}
    names = list(sums)
    print(f"\nGRPO iteration, tiny Qwen2 (hidden {args.hidden}, {args.layers} layers), {args.prompts} prompts x n={args.n}, "
          f"max {args.max_tokens} new tokens, prompt ~{assets['prompt_tokens']:.0f} tokens, {args.threads} thread(s)/process, "
          f"KL coef {args.kl_coef}, mean of {sums[names[0]]['iters']} iterations after {args.warmup} warm-up")
    header = f"{'seconds / iteration':<22}" + "".join(f"{n:>12}" for n in names)
    if len(names) == 2:
        header += f"{'ours/TRL':>12}"
    print(header)
    print("-" * len(header))
    for phase in PHASES:
        line = f"{phase:<22}" + "".join(f"{sums[n][phase]:>12.3f}" for n in names)
        if len(names) == 2 and sums["TRL"][phase] > 1e-4:
            line += f"{sums['ours'][phase] / sums['TRL'][phase]:>12.2f}"
        print(line)
    print(f"{'generated tokens/iter':<22}" + "".join(f"{sums[n]['tokens']:>12.1f}" for n in names))
    print(f"{'ms / generated token':<22}" + "".join(f"{1000 * sums[n]['all'] / sums[n]['tokens']:>12.2f}" for n in names))
    print(f"{'set-up s (once)':<22}" + "".join(f"{results[n]['setup_s']:>12.1f}" for n in names))
    print(f"{'mean reward':<22}" + "".join(f"{statistics.mean(results[n]['rewards']):>12.3f}" for n in names))
    if len(names) == 2:
        o, t = sums["ours"], sums["TRL"]
        print(f"\nratio ours/TRL: {o['all'] / t['all']:.2f}x seconds per iteration, "
              f"{(o['all'] / o['tokens']) / (t['all'] / t['tokens']):.2f}x seconds per generated token "
              f"(< 1 means ours is faster)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=5, help="GRPO iterations per side (incl. warm-up)")
    ap.add_argument("--warmup", type=int, default=1, help="first iterations left out of the averages")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per iteration")
    ap.add_argument("--n", type=int, default=4, help="samples per prompt")
    ap.add_argument("--max-tokens", type=int, default=32, help="max new tokens per sample")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=512, help="max positions (prompt + response)")
    ap.add_argument("--kl-coef", type=float, default=0.001, help="KL coefficient on both sides (TRL beta)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (ours: per worker)")
    ap.add_argument("--reward-workers", type=int, default=1, help="RewardScorer processes on both sides")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--only", choices=("ours", "trl"), default=None, help="run one side only")
    ap.add_argument("--work-dir", default=None, help="keep the assets and logs here (default: a temp dir)")
    args = ap.parse_args()
    if args.iters <= args.warmup:
        ap.error(f"--iters ({args.iters}) must exceed --warmup ({args.warmup})")

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="grpo_step_") as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        assets = build_assets(work, args)
        print(f"assets built in {time.perf_counter() - t:.1f}s under {work}", flush=True)
        results = {}
        if args.only in (None, "ours"):
            results["ours"] = run_ours(work, args)
            print(f"ours: {args.iters} iterations in {results['ours']['train_s']:.1f}s", flush=True)
        if args.only in (None, "trl"):
            from _grpo_step_trl import run_trl

            results["TRL"] = run_trl(str(work / "hf"), assets["prompts"], assets["answers"], assets["stop_ids"], args,
                                     str(work / "trl_out"))
            print(f"TRL: {args.iters} iterations in {results['TRL']['train_s']:.1f}s", flush=True)
        print_report(args, assets, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
