"""The single-controller GRPO loop.

One driver process holds the loop and the whole batch. Each iteration::

    outputs  = actor.generate(prompts, sampling)            # n responses per prompt (rollout engines)
    scores   = reward.score(texts, golds, extras)           # rule-based rewards
    ref_lp   = ref.compute_log_probs(batch)                 # frozen reference (skipped without a KL)
    old_lp   = actor.compute_log_probs(batch)               # the policy that sampled (skippable on-policy)
    adv      = compute_advantages(rl.advantage_estimator, rewards, mask, prompt_index)
    metrics  = actor.update(batch + adv + log-probs, num_mini_batches=..., epochs=...)
    actor.sync_weights()                                    # new weights into the rollout engines

The groups (``workers.groups``) deal each batch out by data-parallel rank and put the results
back in row order; Ray start-up is ``trainer.cluster``, worker start-up ``trainer.startup``, the
iteration's metrics ``trainer.step_metrics``.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch

from mindspeed_rl.config import GRPOConfig
from mindspeed_rl.data.templates import stop_token_ids
from mindspeed_rl.trainer import cluster, ppo
from mindspeed_rl.trainer.experience import Experience, build_experience
from mindspeed_rl.trainer.metrics_logger import MetricsLogger
from mindspeed_rl.trainer.resume_check import config_hash
from mindspeed_rl.trainer.run_checkpoint import latest_iteration, load_run_state, save_checkpoint
from mindspeed_rl.utils.timing import Timer


class GRPOTrainer:
    def __init__(self, cfg: GRPOConfig, ray_address: str | None = None):
        from transformers import AutoTokenizer

        from mindspeed_rl.config import check_inputs_exist, check_resources
        from mindspeed_rl.config.components import total_optimizer_steps
        from mindspeed_rl.data import PromptSampler
        from mindspeed_rl.trainer.preflight import preflight
        from mindspeed_rl.trainer.resume_check import plan_resume
        from mindspeed_rl.trainer.startup import start_workers
        from mindspeed_rl.workers.placement import device_resource

        check_inputs_exist(cfg)
        self.cfg = cfg
        mt = cfg.megatron_training
        self.tokenizer = AutoTokenizer.from_pretrained(mt.tokenizer_name_or_path, local_files_only=True)
        self.dataset = open_prompt_dataset(mt)

        preflight(cfg, self.tokenizer, self.dataset)  # tokenizer/model/dataset agree, outputs writable
        self.resume_plan = plan_resume(cfg)  # the checkpoint to resume, checked and compared, or None
        self.sampler = PromptSampler(len(self.dataset), mt.global_batch_size, seed=mt.seed, num_epochs=None)
        self.stop_ids = stop_token_ids(self.dataset.template, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.num_mini_batches = mt.global_batch_size // (cfg.actor_config.mini_batch_size or mt.global_batch_size)
        self.total_steps = total_optimizer_steps(cfg)

        cluster.init_ray(cfg, ray_address)
        import ray

        self.resource = device_resource()
        check_resources(cfg, ray.cluster_resources(), self.resource)
        self.workers = start_workers(cfg, self.resource, self.total_steps)
        self.actor, self.ref, self.reward = self.workers.actor, self.workers.ref, self.workers.reward
        self.critic = self.workers.critic  # PPO (critic_config) only, else None

    # ---- one iteration ---------------------------------------------------------------
    def generate(self, prompts: list[list[int]], sampling: dict) -> list[list]:
        return self.actor.generate(prompts, sampling)

    def rollout(self, prompts: list[list[int]], iteration: int, round_: int = 0) -> list[list]:
        s = self.cfg.generate_config.sampling_config
        sampling = dict(
            n=self.cfg.rl_config.n_samples_per_prompt,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            min_p=s.min_p,
            max_tokens=s.max_tokens,
            stop_token_ids=self.stop_ids,
            # a fresh, reproducible seed per iteration: a resumed run samples what the original did
            # (dynamic sampling's extra batches, round_ > 0, get their own seeds)
            seed=(s.seed if s.seed is not None else self.cfg.megatron_training.seed) * 1000003 + iteration
            + round_ * 104729,
            logprobs=True,
        )
        return self.generate(prompts, sampling)

    def decode_responses(self, exp: Experience) -> list[str]:
        texts = []
        for ids, reason in zip(exp.response_ids, exp.finish_reasons):
            if reason == "stop" and ids and ids[-1] in self.stop_ids:
                ids = ids[:-1]
            texts.append(self.tokenizer.decode(ids, skip_special_tokens=False))
        return texts

    def generate_and_score(self, iteration: int, prompt_rows: list[int], round_: int, timer: Timer):
        """Generate n responses per prompt and score them (overlong shaping included)."""
        from mindspeed_rl.algorithms.overlong import overlong_penalties
        from mindspeed_rl.trainer.dynamic_sampling import ScoredRollout

        rl = self.cfg.rl_config
        items = self.dataset.batch(prompt_rows)
        prompts = [item.prompt_ids.tolist() for item in items]
        golds = [item.label for item in items]
        with timer("rollout"):
            outputs = self.rollout(prompts, iteration, round_)
        exp = build_experience(prompts, outputs, self.pad_id)
        texts = self.decode_responses(exp)
        row_golds = [golds[p] for p in exp.prompt_index]
        with timer("reward"):
            lengths = [{"response_length": len(r)} for r in exp.response_ids]
            judged = self.reward.score(texts, row_golds, lengths)
        totals, per_fn, reward_metrics = judged.totals, judged.per_function, judged.metrics
        if rl.overlong_buffer_enable:
            penalties = overlong_penalties([len(r) for r in exp.response_ids], self.cfg.generate_config.sampling_config.max_tokens,
                                           rl.overlong_buffer_len, rl.overlong_penalty_factor)
            totals = [t + p for t, p in zip(totals, penalties)]
            per_fn = {**per_fn, "overlong": penalties}
        reward_metrics = {k: float(reward_metrics.get(k, 0)) for k in ("timeouts", "extraction_failures")}
        return ScoredRollout(list(prompt_rows), prompts, golds, outputs, texts, list(totals), dict(per_fn), reward_metrics)

    def step(self, iteration: int, prompt_rows: list[int]) -> tuple[dict, Experience, list[str], list[str]]:
        from mindspeed_rl.algorithms import apply_kl_in_reward, compute_advantages, scores_to_token_rewards
        from mindspeed_rl.trainer import dynamic_sampling
        from mindspeed_rl.trainer.step_metrics import step_metrics

        cfg, rl = self.cfg, self.cfg.rl_config
        timer = Timer()
        t_all = time.perf_counter()
        ds_metrics: dict[str, float] = {}
        if rl.filter_groups_enable:
            scored, ds_metrics = dynamic_sampling.fill_batch(
                prompt_rows, lambda: next(self._batches), lambda rows, r: self.generate_and_score(iteration, rows, r, timer),
                target=cfg.megatron_training.global_batch_size, metric=rl.filter_groups_metric,
                max_num_gen_batches=rl.max_num_gen_batches, warn=lambda msg: print(f"WARNING: {msg}", flush=True))
            if scored is None:  # nothing informative in max_num_gen_batches batches: no update
                return {**ds_metrics, **timer.times, "timing/all": time.perf_counter() - t_all}, None, [], []
        else:
            scored = self.generate_and_score(iteration, prompt_rows, 0, timer)
        exp = build_experience(scored.prompts, scored.outputs, self.pad_id)
        batch = exp.batch
        texts, per_fn = scored.texts, scored.per_fn
        row_golds = [scored.golds[p] for p in exp.prompt_index]
        reward_metrics = scored.reward_metrics
        scores = torch.tensor(scored.scores, dtype=torch.float32)

        if rl.kl_coef != 0 or rl.use_kl_in_reward:
            with timer("reference"):
                ref_lp = self.ref.compute_log_probs(batch)
        else:  # no KL anywhere (DAPO, Open-Reasoner-Zero): nothing reads the reference's log-probs
            ref_lp = None
        on_policy = self.num_mini_batches == 1 and cfg.actor_config.epochs == 1
        if on_policy and not rl.log_rollout_logprob_diff and not rl.use_kl_in_reward:
            # The update treats the step as exactly on-policy (ratio 1): old log-probs are unused.
            # (A KL penalty in the reward reads them: the rollout engine's are not bit-equal to them.)
            old_lp = None
        else:
            with timer("old_log_p"):
                old_lp = self.actor.compute_log_probs(batch)
        mask = batch["response_mask"]
        if rl.use_kl_in_reward:
            policy_lp = old_lp  # the policy's log-probs (never skipped with use_kl_in_reward)
            token_scores = scores_to_token_rewards(scores, mask)
            rewards_for_adv, _ = apply_kl_in_reward(token_scores, policy_lp, ref_lp, mask, rl.kl_coef, rl.kl_estimator)
        else:
            rewards_for_adv = scores
        if self.critic is not None:  # PPO: the critic's values, GAE (trainer/ppo.py)
            with timer("values"):
                values = self.critic.compute_values(batch)
            advantages, returns = ppo.gae(rl, rewards_for_adv, values, mask)
        else:
            advantages = compute_advantages(rl.advantage_estimator, rewards_for_adv, mask, exp.prompt_index,
                                            epsilon=rl.norm_adv_eps)
        train_mask = mask
        if rl.overlong_filter:
            from mindspeed_rl.algorithms.overlong import mask_truncated

            train_mask = mask_truncated(mask, exp.finish_reasons)
        train_batch = {
            "input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "response_mask": train_mask,
            "advantages": advantages,
        }
        if ref_lp is not None:
            train_batch["ref_log_probs"] = ref_lp
        if old_lp is not None:
            train_batch["old_log_probs"] = old_lp
        # a short dynamic-sampling batch keeps the configured mini-batch count while it has the prompts
        num_mini = min(self.num_mini_batches, len(scored.prompts))
        update_metrics = {}
        if self.critic is None or ppo.actor_trains(rl, iteration):  # PPO: not during the critic's warm-up
            with timer("update"):
                update_metrics = self.actor.update(train_batch, num_mini_batches=num_mini, epochs=cfg.actor_config.epochs)
            with timer("weight_sync"):
                self.actor.sync_weights()
        if self.critic is not None:
            with timer("critic_update"):
                critic_update = self.critic.update(ppo.critic_batch(batch, train_mask, values, returns),
                                                   num_mini_batches=ppo.critic_num_mini_batches(cfg, len(scored.prompts)),
                                                   epochs=cfg.critic_config.epochs)

        metrics = step_metrics(
            scores=scores, per_function=per_fn, reward_counters=reward_metrics, advantages=advantages, exp=exp,
            dynamic_sampling=ds_metrics, max_tokens=cfg.generate_config.sampling_config.max_tokens,
            old_log_probs=old_lp, update=update_metrics, times=timer.times, elapsed=time.perf_counter() - t_all,
            num_devices=rl.actor_resource.num_devices)
        if self.critic is not None:
            metrics.update(ppo.critic_metrics(critic_update, values, returns, train_mask))
        return metrics, exp, texts, row_golds

    # ---- the run ---------------------------------------------------------------------
    def save(self, iteration: int) -> Path:
        mt = self.cfg.megatron_training

        def write_parts(tmp: Path) -> None:
            self.actor.save(str(tmp))
            if self.critic is not None:
                self.critic.save(str(tmp))

        # what an export needs besides the weights (tools/convert mcore2hf, cli/evaluate.py)
        hf_dir = self.cfg.model.hf_config_dir or mt.tokenizer_name_or_path
        export = {"hf_config_dir": os.path.abspath(hf_dir), "tokenizer": os.path.abspath(mt.tokenizer_name_or_path),
                  "template": self.dataset.template.name, "stop_token_ids": list(self.stop_ids)}
        state = {"sampler": self.sampler.state_dict(), "config_hash": config_hash(self.cfg),
                 "config": dataclasses.asdict(self.cfg),  # compared key by key on resume
                 "torch_rng": torch.get_rng_state().tolist(), "export": export}
        return save_checkpoint(mt.save, iteration, state, write_parts, side_dirs=[hf_dir, mt.tokenizer_name_or_path])

    def resume(self) -> int:
        from mindspeed_rl.trainer.resume_check import describe

        plan = self.resume_plan
        if plan is None:
            return 0
        print(describe(plan), flush=True)
        iteration, state, path = load_run_state(plan.source, plan.iteration)
        self.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        self.actor.load(str(path))
        if self.critic is not None:
            self.critic.load(str(path))
        print(f"resumed from {path} (iteration {iteration})", flush=True)
        return iteration

    def _build_validator(self):
        rl = self.cfg.rl_config
        if not rl.val_datasets or not (rl.test_freq > 0 or rl.test_before_train):
            return None
        from mindspeed_rl.evaluation.validation import Validator, validation_configs

        samples = Path(self.cfg.megatron_training.log_dir) / "validation"
        return Validator(validation_configs(rl.val_datasets, source="rl_config.val_datasets"), self.tokenizer,
                         samples_dir=str(samples), log=None)

    def validate(self, validator, iteration: int) -> dict:
        t = time.perf_counter()
        metrics = validator(_RolloutGroupEngine(self), step=iteration)
        metrics["timing/validation"] = time.perf_counter() - t
        # No line of its own: the iteration's console line carries val/<set>/pass@1 (one line per iteration).
        return metrics

    def fit(self) -> dict:
        mt, rl = self.cfg.megatron_training, self.cfg.rl_config
        start = self.resume()
        logger = MetricsLogger.from_config(self.cfg, resume=start > 0)
        if start:
            logger.truncate_after(start)
        history = []
        batches = self._batches = iter(self.sampler)  # dynamic sampling draws extra batches from it
        validator = self._build_validator()
        try:
            if validator is not None and rl.test_before_train and start == 0:
                logger.log(0, mt.train_iters, self.validate(validator, 0))
            for iteration in range(start + 1, mt.train_iters + 1):
                metrics, exp, texts, golds = self.step(iteration, next(batches))
                exp = exp if exp is not None else Experience({}, [], [], [])  # no update this iteration
                if validator is not None and rl.test_freq > 0 and (iteration % rl.test_freq == 0 or iteration == mt.train_iters):
                    metrics.update(self.validate(validator, iteration))
                history.append(metrics)
                logger.log(iteration, mt.train_iters, metrics)
                if rl.save_samples_interval and (iteration % rl.save_samples_interval == 0 or iteration == 1):
                    logger.save_samples(iteration, [
                        {"prompt_index": p, "gold": g, "response": t, "finish_reason": f}
                        for p, g, t, f in zip(exp.prompt_index, golds, texts, exp.finish_reasons)
                    ][: 4 * rl.n_samples_per_prompt])
                if mt.save and mt.save_interval and iteration % mt.save_interval == 0:
                    self.save(iteration)
            if mt.save and (not mt.save_interval or mt.train_iters % mt.save_interval) and mt.train_iters > start:
                self.save(mt.train_iters)
        finally:
            curves = logger.plot_curves()
            logger.close()
            if validator is not None:
                validator.close()
        print(f"metrics: {logger.jsonl_path}\ncurves: {curves}\ntensorboard: {Path(mt.log_dir) / 'tensorboard'}"
              + (f"\ncheckpoints: {mt.save}" if mt.save else ""), flush=True)
        return {"history": history}

    def final_weights(self) -> dict:
        return self.actor.export_state()

    def shutdown(self) -> None:
        self.workers.shutdown()


class _RolloutGroupEngine:
    """The actor group's rollout engines seen as one engine (``generate`` only), for validation."""

    def __init__(self, trainer: GRPOTrainer):
        self.trainer = trainer

    def generate(self, prompt_token_ids, sampling):
        kwargs = dataclasses.asdict(sampling) if dataclasses.is_dataclass(sampling) else dict(sampling)
        return self.trainer.generate([list(p) for p in prompt_token_ids], kwargs)


def open_prompt_dataset(mt):
    """The run's prompt dataset; a damaged one, or prompts longer than max_prompt_length, are
    refused here naming the file and the key."""
    from mindspeed_rl.config import ConfigError
    from mindspeed_rl.config.errors import Problem
    from mindspeed_rl.data import PromptDataset
    from mindspeed_rl.data.prompt_dataset import DatasetFormatError

    try:
        dataset = PromptDataset(mt.data_path)
    except DatasetFormatError as exc:
        raise ConfigError([Problem("megatron_training.data_path", mt.data_path, str(exc),
                                   "preprocess the dataset again (cli/preprocess_data.py)")]) from None
    longest = int(dataset.prompt_lengths.max()) if len(dataset) else 0
    if longest > mt.max_prompt_length:
        raise ConfigError([Problem("megatron_training.max_prompt_length", mt.max_prompt_length,
                                   f"the dataset {mt.data_path} has prompts of up to {longest} tokens",
                                   f"raise it to {longest} (and the lengths that depend on it) or preprocess "
                                   f"with max_prompt_length={mt.max_prompt_length}")])
    return dataset


def run(cfg: GRPOConfig) -> int:
    trainer = GRPOTrainer(cfg)
    try:
        trainer.fit()
    except KeyboardInterrupt:
        # Checkpoints are renamed into place only when complete, so the last one is intact.
        save = cfg.megatron_training.save
        last = latest_iteration(save) if save and Path(save).exists() else None
        where = f"last good checkpoint: {save} (iteration {last})" if last else "no checkpoint was written"
        print(f"\ninterrupted; {where}", flush=True)
        return 130
    finally:
        trainer.shutdown()
    return 0
