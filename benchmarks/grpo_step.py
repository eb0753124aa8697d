"""Seconds per GRPO iteration and where they go: our trainer vs TRL's ``GRPOTrainer``, same run.

Both sides train the same tiny random Qwen2 model (built here, nothing downloaded) on the same
rendered ``qwen_r1`` prompts with the same tokenizer, prompts per iteration, samples per prompt
(n), max new tokens, sampling (temperature 1), reward (``mindspeed_rl.rewards`` ``acc`` through a
``RewardScorer`` with the same worker count), KL coefficient (k3 / low_var_kl estimator in the
loss, so both run a reference forward), learning rate (constant), clipping (0.2, grad norm 1.0),
one optimizer step per iteration, the same torch thread count per process, fp32 on CPU.

The sides are two long-lived processes that take turns iteration by iteration (ours, TRL, ours,
TRL, ...): each sets up once, then waits for its turn, runs one iteration and reports it, so a load
change on a shared box hits both alike. The first ``--warmup`` iterations of each side are left out;
the report gives the median over the rest, the spread (min-max), each phase's share of the
iteration and the ratio of the medians.

Ours is the full production path: Ray driver + actor/rollout worker (Megatron engine for the
update and log-probs, HF rollout engine for generation, weight sync between them) + reward worker,
each iteration ``GRPOTrainer.step`` as ``fit`` runs it. Its Ray workers run at niceness 0
(``RAY_worker_niceness``; Ray's default 15 would lower their priority against TRL's in-process
trainer and any other job), and ``rl_config.log_rollout_logprob_diff=false``: with one mini-batch
and one epoch the update takes the current log-probs as the old ones (ratio exactly 1), so the
old-log-prob pass, whose only other use is that diagnostic, is skipped, as TRL skips it.
Phases are our ``timing/*`` metrics; TRL's are measured by wrapping its own methods
(see ``benchmarks/_grpo_step_trl.py``).

    python3 benchmarks/grpo_step.py                                  # ~3-5 minutes on 2 cores
    python3 benchmarks/grpo_step.py --prompts 8 --n 8 --max-tokens 64 --hidden 128
    python3 benchmarks/grpo_step.py --n 16 --max-tokens 256
    python3 benchmarks/grpo_step.py --only ours                      # one side only
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
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
MARK = "@@grpo_step "  # a side process's protocol lines on its stdout (everything else goes to its log)
SIDES = {"ours": "ours", "trl": "TRL"}


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

    assets = {
        "prompts": [template.render(r["problem"]) for r in rows],
        "answers": [r["answer"] for r in rows],
        "stop_ids": stop_token_ids(template, tokenizer),
        "prompt_tokens": statistics.mean(len(tokenizer(template.render(r["problem"]))["input_ids"]) for r in rows),
    }
    (work / "assets.json").write_text(json.dumps(assets))
    return assets


# ---- a side's process: set up once, then one iteration per turn ------------------------------
class Gate:
    """The side's end of the protocol: ``ready`` once set up, ``wait`` for its turn, ``emit`` a record."""

    def __init__(self):
        self._out = sys.stdout

    def _send(self, kind: str, payload) -> None:
        self._out.write(f"\n{MARK}{kind} {json.dumps(payload)}\n")
        self._out.flush()

    def ready(self, setup_s: float) -> None:
        self._send("ready", {"setup_s": setup_s})

    def wait(self) -> None:
        line = sys.stdin.readline()
        if line.strip() != "go":
            raise SystemExit(f"grpo_step side: expected 'go' from the driver, got {line!r}")

    def emit(self, rec: dict) -> None:
        self._send("step", rec)


# ---- our trainer ----------------------------------------------------------------------------
def run_ours(work: Path, args, gate: Gate) -> None:
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
        # on-policy with one mini-batch: the old-log-prob pass is exactly redundant (TRL skips it too)
        "rl_config.log_rollout_logprob_diff=false",
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
    gate.ready(time.perf_counter() - t)
    try:
        batches = trainer._batches = iter(trainer.sampler)  # what fit() sets up (dynamic sampling reads it)
        for iteration in range(1, args.iters + 1):
            gate.wait()
            m, _, _, _ = trainer.step(iteration, next(batches))
            rec = {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("timing/")}
            rec["generated_tokens"] = m["response_length/mean"] * rows
            rec["reward"] = m["reward/mean"]
            gate.emit(rec)
    finally:
        trainer.shutdown()
        import ray

        ray.shutdown()


def side_main(args) -> int:
    """``--side ours|trl``: one side's long-lived process (started by the driver below)."""
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    gate = Gate()
    if args.side == "ours":
        run_ours(work, args, gate)
    else:
        from _grpo_step_trl import run_trl

        assets = json.loads((work / "assets.json").read_text())
        run_trl(str(work / "hf"), assets["prompts"], assets["answers"], assets["stop_ids"], args,
                str(work / "trl_out"), gate=gate)
    return 0


class Side:
    """The driver's handle on a side process: its protocol lines arrive on a queue, the rest in its log."""

    def __init__(self, name: str, argv: list[str], work: Path):
        env = dict(os.environ)
        if name == "ours":
            env.setdefault("RAY_worker_niceness", "0")  # Ray's default 15 deprioritises our workers
        self.name, self.log_path = name, work / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, __file__, "--side", name, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: "queue.Queue" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(MARK):
                kind, payload = line[len(MARK):].split(" ", 1)
                self.lines.put((kind, json.loads(payload)))
            else:
                self.log.write(line)
                self.log.flush()
        self.lines.put(("exit", None))

    def expect(self, kind: str, timeout: float):
        try:
            got, payload = self.lines.get(timeout=timeout)
        except queue.Empty:
            got, payload = "timeout", None
        if got != kind:
            self.proc.kill()
            tail = self.log_path.read_text()[-3000:]
            raise RuntimeError(f"{self.name} side: expected {kind}, got {got}; log {self.log_path}:\n{tail}")
        return payload

    def go(self, timeout: float) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.expect("step", timeout)

    def close(self, timeout: float = 300) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def run_interleaved(work: Path, args, argv: list[str]) -> dict:
    """Both sides set up one after the other, then take turns: one iteration each, A, B, A, B, ..."""
    names = [n for n in ("ours", "trl") if args.only in (None, n)]
    sides, results = {}, {}
    try:
        for name in names:  # set up one at a time: set-up is reported apart, not inside the iterations
            sides[name] = Side(name, argv, work)
            setup = sides[name].expect("ready", timeout=args.timeout)
            results[SIDES[name]] = {"steps": [], "setup_s": setup["setup_s"], "rewards": []}
            print(f"{SIDES[name]}: set up in {setup['setup_s']:.1f}s", flush=True)
        for it in range(1, args.iters + 1):
            for name in names:
                rec = sides[name].go(timeout=args.timeout)
                results[SIDES[name]]["steps"].append(rec)
                results[SIDES[name]]["rewards"].append(rec.get("reward", float("nan")))
                print(f"iteration {it} {SIDES[name]:>4}: {rec['all']:.2f}s", flush=True)
    finally:
        for side in sides.values():
            side.close()
    return results


# ---- report ---------------------------------------------------------------------------------
def summarise(result: dict, warmup: int) -> dict:
    """Per phase: median, min, max over the iterations after warm-up, and its share of the median iteration."""
    steps = result["steps"][warmup:] or result["steps"]
    for s in steps:
        s["other"] = s["all"] - sum(s.get(p, 0.0) for p in PHASES if p not in ("other", "all"))
    out = {}
    for phase in PHASES:
        vals = [s.get(phase, 0.0) for s in steps]
        out[phase] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    for phase in PHASES:
        out[phase]["share"] = out[phase]["median"] / out["all"]["median"]
    out["tokens"] = statistics.median(s.get("generated_tokens", float("nan")) for s in steps)
    out["iters"] = len(steps)
    return out


def print_report(args, assets: dict, results: dict) -> None:
    sums = {name: summarise(r, args.warmup) for name, r in results.items()}
    names = list(sums)
    print(f"\nGRPO iteration, tiny Qwen2 (hidden {args.hidden}, {args.layers} layers), {args.prompts} prompts x n={args.n}, "
          f"max {args.max_tokens} new tokens, prompt ~{assets['prompt_tokens']:.0f} tokens, {args.threads} thread(s)/process, "
          f"KL coef {args.kl_coef}; sides interleaved iteration by iteration; median [min-max] of "
          f"{sums[names[0]]['iters']} iterations after {args.warmup} warm-up; share = phase median / iteration median")
    header = f"{'seconds / iteration':<20}" + "".join(f"{n:>28}" for n in names)
    if len(names) == 2:
        header += f"{'ours/TRL':>10}"
    print(header)
    print("-" * len(header))
    for phase in PHASES:
        line = f"{phase:<20}"
        for n in names:
            p = sums[n][phase]
            line += f"{p['median']:>8.3f} [{p['min']:.3f}-{p['max']:.3f}] {100 * p['share']:>4.0f}%"
        if len(names) == 2 and sums["TRL"][phase]["median"] > 1e-4:
            line += f"{sums['ours'][phase]['median'] / sums['TRL'][phase]['median']:>10.2f}"
        print(line)
    print(f"{'generated tokens/it':<20}" + "".join(f"{sums[n]['tokens']:>28.1f}" for n in names))
    print(f"{'ms / generated token':<20}"
          + "".join(f"{1000 * sums[n]['all']['median'] / sums[n]['tokens']:>28.2f}" for n in names))
    print(f"{'set-up s (once)':<20}" + "".join(f"{results[n]['setup_s']:>28.1f}" for n in names))
    print(f"{'mean reward':<20}" + "".join(f"{statistics.mean(results[n]['rewards']):>28.3f}" for n in names))
    if len(names) == 2:
        o, t = sums["ours"], sums["TRL"]
        # each of our iterations against the TRL iteration right after it (same stretch of box load)
        paired = sorted(a["all"] / b["all"] for a, b in zip(results["ours"]["steps"][args.warmup:],
                                                             results["TRL"]["steps"][args.warmup:]))
        print(f"\nratio ours/TRL: {o['all']['median'] / t['all']['median']:.2f}x seconds per iteration (medians), "
              f"{(o['all']['median'] / o['tokens']) / (t['all']['median'] / t['tokens']):.2f}x seconds per generated "
              f"token; iteration by iteration {statistics.median(paired):.2f}x [{paired[0]:.2f}-{paired[-1]:.2f}] "
              f"(< 1 means ours is faster)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=6, help="GRPO iterations per side (incl. warm-up)")
    ap.add_argument("--warmup", type=int, default=1, help="first iterations left out of the medians")
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
    ap.add_argument("--timeout", type=float, default=900, help="seconds a side may take to set up or for one iteration")
    ap.add_argument("--side", choices=("ours", "trl"), default=None, help=argparse.SUPPRESS)  # a side's process
    args = ap.parse_args()
    if args.iters <= args.warmup:
        ap.error(f"--iters ({args.iters}) must exceed --warmup ({args.warmup})")
    if args.side:
        return side_main(args)

    keep = ("iters", "warmup", "prompts", "n", "max_tokens", "hidden", "layers", "max_len", "kl_coef", "lr",
            "threads", "reward_workers", "seed")
    with tempfile.TemporaryDirectory(prefix="grpo_step_") as tmp:
        work = Path(args.work_dir or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        argv = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in keep] + [f"--work-dir={work}"]
        t = time.perf_counter()
        import torch

        torch.set_num_threads(args.threads)
        assets = build_assets(work, args)
        print(f"assets built in {time.perf_counter() - t:.1f}s under {work}", flush=True)
        results = run_interleaved(work, args, argv)
        if args.work_dir:
            (work / "results.json").write_text(json.dumps(results))
        print_report(args, assets, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
