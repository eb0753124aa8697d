"""The TRL side of ``benchmarks/grpo_step.py``: ``trl.GRPOTrainer`` on the same model, prompts and
reward, with per-step timing split into the phases our trainer reports.

TRL has no phase timers of its own that stay local (its ``profiling_context`` only reports to
wandb/mlflow/trackio), so the phases are measured by wrapping the trainer's own methods:

- rollout:    ``_generate`` (prompt tokenisation + ``model.generate``)
- reward:     ``_calculate_rewards``
- reference:  ``_get_per_token_logps_and_entropies`` on ``ref_model``
- old_log_p:  the same on the policy without grad (TRL skips it when on-policy: one step per rollout)
- update:     ``training_step`` minus the above (forward/backward) + what follows it up to
              ``on_step_end`` (gradient clipping, optimizer and scheduler steps, zero_grad)
- all:        ``on_step_begin`` -> ``on_step_end`` (a TrainerCallback)

With a ``gate`` (``grpo_step.py``'s side process), each step waits for ``gate.wait()`` before it
starts (so the two sides take turns) and hands its record to ``gate.emit`` when it ends.
"""
from __future__ import annotations

import time
from collections import defaultdict

import torch

PHASES = ("rollout", "reward", "reference", "old_log_p", "update", "weight_sync", "all")


def _timed(store: dict, key_fn, fn):
    def wrapper(*args, **kwargs):
        key = key_fn(*args, **kwargs)
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if key:
                store[key] += time.perf_counter() - t
    return wrapper


def run_trl(hf_dir: str, prompts: list[str], answers: list[str], stop_ids: list[int], args, out_dir: str,
            gate=None) -> dict:
    """Train ``args.iters`` steps; return per-step phase seconds and completion lengths."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mindspeed_rl.rewards import RewardScorer

    torch.set_num_threads(args.threads)
    t_setup = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, local_files_only=True)
    # stop on the template's stop words as our rollout does (TRL stops on generation_config's EOS ids)
    model.generation_config.eos_token_id = list(stop_ids)
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    scorer = RewardScorer(["acc"], [1.0], num_workers=args.reward_workers)

    def acc_reward(completions, answer, **_):
        totals, _, _ = scorer.score(list(completions), list(answer))
        return [float(t) for t in totals]

    rows = args.prompts * args.n
    config = GRPOConfig(
        output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, report_to=[], save_strategy="no",
        logging_steps=1, disable_tqdm=True, seed=args.seed, data_seed=args.seed,
        per_device_train_batch_size=rows, gradient_accumulation_steps=1, generation_batch_size=rows,
        num_generations=args.n, max_completion_length=args.max_tokens, num_iterations=1,
        max_steps=args.iters, learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=1.0, beta=args.kl_coef, epsilon=0.2, loss_type="dapo",
        scale_rewards="group", temperature=1.0, top_p=1.0, top_k=0, dataloader_num_workers=0,
        use_vllm=False, log_completions=False,
        gradient_checkpointing=False,  # TRL 1.16 defaults to True; ours does not recompute (recompute_activations=false)
    )
    dataset = Dataset.from_dict({"prompt": list(prompts), "answer": list(answers)})

    steps: list[dict] = []
    current: dict = defaultdict(float)
    logs_seen: list[dict] = []

    holder: dict = {}

    class StepTimer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if gate is not None:
                if not holder.get("ready"):
                    holder["ready"] = True
                    gate.ready(time.perf_counter() - t_setup)
                gate.wait()  # the other side's iteration runs meanwhile; ours starts when it has ended
            current.clear()
            current["_t0"] = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            now = time.perf_counter()
            rec = dict(current)
            rec["all"] = now - rec.pop("_t0")
            rec["_optimizer"] = now - rec.pop("_t_after_train_step", now)
            inside = rec.get("rollout", 0.0) + rec.get("reward", 0.0) + rec.get("reference", 0.0) + rec.get("old_log_p", 0.0)
            rec["update"] = rec.pop("_train_step", 0.0) - inside + rec.pop("_optimizer", 0.0)
            rec["weight_sync"] = 0.0  # generation uses the training model itself
            lengths_now = holder["trainer"]._metrics["train"].get("completions/mean_length") or [float("nan")]
            rec["generated_tokens"] = lengths_now[-1] * rows  # this step's (the list is cleared at each log)
            rec["reward"] = (holder["trainer"]._metrics["train"].get("reward") or [float("nan")])[-1]
            steps.append(rec)
            if gate is not None:
                gate.emit(rec)

        def on_log(self, a, state, control, logs=None, **kw):
            logs_seen.append(dict(logs or {}))

    trainer = GRPOTrainer(model=model, reward_funcs=[acc_reward], args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[StepTimer()])
    holder["trainer"] = trainer
    trainer.remove_callback(PrinterCallback)  # logging_steps=1 feeds on_log; the dicts need not be printed

    trainer._generate = _timed(current, lambda *a, **k: "rollout", trainer._generate)
    trainer._calculate_rewards = _timed(current, lambda *a, **k: "reward", trainer._calculate_rewards)

    def logp_phase(m, *a, **k):
        if trainer.ref_model is not None and m is trainer.ref_model:
            return "reference"
        return None if torch.is_grad_enabled() else "old_log_p"

    trainer._get_per_token_logps_and_entropies = _timed(current, logp_phase, trainer._get_per_token_logps_and_entropies)
    timed_train_step = _timed(current, lambda *a, **k: "_train_step", trainer.training_step)

    def training_step(*a, **k):
        try:
            return timed_train_step(*a, **k)
        finally:
            current["_t_after_train_step"] = time.perf_counter()

    trainer.training_step = training_step
    setup_s = time.perf_counter() - t_setup

    t_train = time.perf_counter()
    try:
        trainer.train()
    finally:
        scorer.close()
    train_s = time.perf_counter() - t_train

    rewards = [entry["reward"] for entry in logs_seen if "reward" in entry]
    return {"steps": steps, "setup_s": setup_s, "train_s": train_s, "rewards": rewards,
            "has_reference": trainer.ref_model is not None}
