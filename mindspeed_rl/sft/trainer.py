"""Supervised fine-tuning on the Megatron engine, one function per rank (torchrun-style worlds).

Each rank builds the same ``MegatronEngine`` (TP x PP x DP from ``train``), reads and encodes the
data itself (same seeded order everywhere), and per optimizer step takes the step's global rows
(``data.step_rows``), its DP share (balanced by tokens, ``engine.batch.balanced_dp_shard_indices``)
and calls ``engine.train_batch`` with ``sft_loss`` (token-mean cross-entropy over the assistant
tokens of the whole global batch, optional label smoothing). Micro-batches are cut by the engine:
``micro_batch_size`` rows, or a token budget (``max_tokens_per_micro_batch``: rows of similar length
together, each micro-batch padded to its own longest row). The update is therefore the same at any
TP/PP/DP and micro-batch split.

Run checkpoints use the GRPO trainer's layout (``trainer/run_checkpoint``: ``iter_N/actor/`` engine
state, ``hf_config/``, ``run_state.json``, the tracker written last), so ``tools/convert mcore2hf``,
``cli/evaluate.py`` and ``sft.export`` read them, and a rerun resumes from the newest one.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List

import torch
import torch.distributed as dist

from mindspeed_rl.sft.config import SFTConfig, total_steps
from mindspeed_rl.sft.data import SFTExample, collate, load_examples, step_rows

INIT_DIR = "init_mcore"  # a HF model.load is converted here at the run's TP/PP
RESUME_KEYS = ("data.train_path", "train.global_batch_size", "train.seed", "train.tensor_model_parallel_size",
               "train.pipeline_model_parallel_size", "train.data_parallel_size")


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _log(msg: str) -> None:
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(msg, flush=True)


def resolve_model(cfg: SFTConfig) -> tuple[str, str]:
    """``(converted Megatron checkpoint at the run's TP/PP, HF side directory)``; a HF ``model.load``
    is converted by rank 0 into ``<save>/init_mcore`` (reused when already there)."""
    from mindspeed_rl.evaluation.model_source import is_hf_directory, is_megatron_checkpoint

    load = os.path.abspath(os.path.expanduser(cfg.model.load))
    t = cfg.train
    if is_hf_directory(load) and not is_megatron_checkpoint(load):
        out = os.path.join(os.path.abspath(cfg.save), INIT_DIR)
        if dist.get_rank() == 0 and not _converted_at(out, t.tensor_model_parallel_size, t.pipeline_model_parallel_size):
            from mindspeed_rl.models.convert import hf_to_mcore

            shutil.rmtree(out, ignore_errors=True)
            hf_to_mcore(load, out, tp=t.tensor_model_parallel_size, pp=t.pipeline_model_parallel_size, quiet=True)
        _barrier()
        return out, cfg.model.hf_config_dir or load
    side = cfg.model.hf_config_dir or os.path.join(load, "hf_config")
    if not is_hf_directory(side):
        raise FileNotFoundError(f"model.hf_config_dir: {side} has no config.json; pass the HF directory of the "
                                "model's config and tokenizer")
    return load, side


def _converted_at(path: str, tp: int, pp: int) -> bool:
    meta = os.path.join(path, "convert_meta.json")
    if not os.path.isfile(meta):
        return False
    with open(meta, encoding="utf-8") as f:
        m = json.load(f)
    return (int(m["tp"]), int(m["pp"])) == (tp, pp)


def engine_config(cfg: SFTConfig, steps: int):
    from mindspeed_rl.engine import MegatronEngineConfig
    from mindspeed_rl.engine.kernels import KernelConfig

    t = cfg.train
    return MegatronEngineConfig(
        tensor_model_parallel_size=t.tensor_model_parallel_size, pipeline_model_parallel_size=t.pipeline_model_parallel_size,
        micro_batch_size=t.micro_batch_size, max_tokens_per_micro_batch=t.max_tokens_per_micro_batch,
        log_prob_max_tokens_per_micro_batch=t.max_tokens_per_micro_batch, params_dtype=t.params_dtype, seed=t.seed,
        kernels=KernelConfig(recompute_granularity=t.recompute_granularity), sequence_parallel=t.sequence_parallel,
        lr=t.lr, min_lr=t.min_lr, lr_decay_style=t.lr_decay_style, lr_warmup_steps=int(round(t.lr_warmup_fraction * steps)),
        lr_decay_steps=steps, weight_decay=t.weight_decay, adam_beta1=t.adam_beta1, adam_beta2=t.adam_beta2, adam_eps=t.adam_eps,
        clip_grad=t.clip_grad, use_distributed_optimizer=t.use_distributed_optimizer,
    )


def dp_batch(engine, examples: List[SFTExample], rows: List[int], pad_id: int) -> Dict[str, torch.Tensor]:
    """This DP rank's share of the global rows ``rows`` (equal row counts, balanced tokens)."""
    from mindspeed_rl.engine.batch import balanced_dp_shard_indices

    lengths = [len(examples[r]) for r in rows]
    mine = balanced_dp_shard_indices(lengths, engine.dp_size)[engine.dp_rank].tolist()
    return collate([examples[rows[i]] for i in mine], pad_id)


def validation_loss(engine, examples: List[SFTExample], pad_id: int, rows_per_call: int) -> Dict[str, float]:
    """Token-mean NLL over the learned tokens of every validation row (no smoothing), all DP ranks."""
    from mindspeed_rl.engine.batch import dp_shard_indices

    mine = dp_shard_indices(len(examples), engine.dp_size, engine.dp_rank).tolist()
    sums = torch.zeros(2, dtype=torch.float64)
    # forward passes involve only this rank's TP/PP peers, which hold the same DP shard
    for start in range(0, len(mine), rows_per_call):
        batch = collate([examples[i] for i in mine[start:start + rows_per_call]], pad_id)
        lp = engine.infer_batch(batch)["log_probs"].cpu().double()
        mask = batch["loss_mask"].double()
        sums += torch.stack([-(lp * mask).sum(), mask.sum()])
    if engine.dp_size > 1:
        dist.all_reduce(sums, group=engine.dp_group)
    return {"val/loss": float(sums[0] / sums[1].clamp(min=1.0)), "val/tokens": float(sums[1])}


def _nested(cfg_dict: dict, dotted: str):
    out = cfg_dict
    for part in dotted.split("."):
        out = out[part]
    return out


def check_resumable(cfg: SFTConfig, state: dict, where: str) -> None:
    """A run resumes only with the settings that fix its data order and layout."""
    saved = state.get("config") or {}
    now = dataclasses.asdict(cfg)
    for key in RESUME_KEYS:
        try:
            before = _nested(saved, key)
        except (KeyError, TypeError):
            continue
        if before != _nested(now, key):
            raise ValueError(f"{where}: saved with {key}={before!r}, this run has {_nested(now, key)!r}; "
                             f"resume with the same value, or give another save directory (or resume=false)")


def save_run_checkpoint(engine, cfg: SFTConfig, step: int, side_dir: str, template: str, stop_ids: List[int]) -> str:
    """Every rank writes its engine files into ``iter_N.tmp/actor``; rank 0 adds ``hf_config/`` and
    ``run_state.json``, renames the directory into place, then updates the tracker."""
    from mindspeed_rl.models.convert import copy_side_files
    from mindspeed_rl.trainer.run_checkpoint import SIDE_DIR, iteration_dir
    from mindspeed_rl.utils.fs import atomic_write_json, replace_dir, write_tracker

    final = iteration_dir(cfg.save, step)
    tmp = final.with_name(final.name + ".tmp")
    if dist.get_rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    engine.save_checkpoint(str(tmp / "actor"), iteration=step)
    if dist.get_rank() == 0:
        copy_side_files(side_dir, str(tmp / SIDE_DIR))
        export = {"hf_config_dir": os.path.abspath(side_dir), "tokenizer": os.path.abspath(side_dir),
                  "template": template, "stop_token_ids": list(stop_ids)}
        atomic_write_json(tmp / "run_state.json", {"iteration": step, "kind": "sft", "step": step,
                                                   "config": dataclasses.asdict(cfg), "export": export},
                          fsync=True, indent=1)
        replace_dir(tmp, final)
        write_tracker(cfg.save, step)
    _barrier()
    return str(final)


def _resume(engine, cfg: SFTConfig) -> int:
    from mindspeed_rl.trainer.run_checkpoint import load_run_state

    if not cfg.resume or not Path(cfg.save).is_dir():
        return 0
    found = load_run_state(cfg.save)
    if found is None:
        return 0
    step, state, path = found
    check_resumable(cfg, state, str(path))
    engine.load_checkpoint(str(path / "actor"))
    _log(f"resumed from {path} (step {step})")
    return int(step)


class MetricsLog:
    """``metrics.jsonl`` on rank 0 (appended: a resumed run continues the file)."""

    def __init__(self, log_dir: str):
        self.path = None
        if dist.get_rank() == 0:
            os.makedirs(log_dir, exist_ok=True)
            self.path = os.path.join(log_dir, "metrics.jsonl")

    def write(self, record: dict) -> None:
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def train_sft_rank(rank: int, world_size: int, cfg: SFTConfig) -> Dict[str, float]:
    """The whole run on one rank (torch.distributed already initialised, or initialised here from
    ``MASTER_ADDR``/``MASTER_PORT``); returns the last step's and the final validation metrics."""
    from transformers import AutoTokenizer

    from mindspeed_rl.algorithms import SFTLossConfig, sft_loss
    from mindspeed_rl.data import load_template, stop_token_ids
    from mindspeed_rl.engine import MegatronEngine
    from mindspeed_rl.platform import current_platform

    platform = current_platform()
    platform.init_process_group(rank, world_size)
    platform.apply_megatron_adaptor()
    if dist.get_world_size() != cfg.world_size:
        raise ValueError(f"world size {dist.get_world_size()} != train.tensor_model_parallel_size x "
                         f"pipeline_model_parallel_size x data_parallel_size = {cfg.world_size}; "
                         "set train.data_parallel_size (or the process count) to agree")
    load, side = resolve_model(cfg)
    tokenizer = AutoTokenizer.from_pretrained(side, local_files_only=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    template = load_template(cfg.data.template, cfg.data.templates_path)
    train = load_examples(cfg.data.train_path, cfg.data, tokenizer, template)
    val = load_examples(cfg.data.val_path, dataclasses.replace(cfg.data, max_rows=0), tokenizer, template) \
        if cfg.data.val_path else []
    steps = total_steps(cfg, len(train))
    engine = MegatronEngine(side, engine_config(cfg, steps), load=load)
    loss = sft_loss(SFTLossConfig(label_smoothing=cfg.train.label_smoothing, mask_key="loss_mask"))
    start = _resume(engine, cfg)
    log = MetricsLog(cfg.log_dir or os.path.join(cfg.save, "logs"))
    stop_ids = stop_token_ids(template, tokenizer)
    _log(f"sft: {len(train)} train rows, {len(val)} val rows, {steps} steps of {cfg.train.global_batch_size} rows, "
         f"tp{engine.tp_size} pp{engine.pp_size} dp{engine.dp_size}, start at step {start}")
    t = cfg.train
    last: Dict[str, float] = {}
    for step in range(start, steps):
        t0 = time.perf_counter()
        batch = dp_batch(engine, train, step_rows(len(train), t.global_batch_size, t.seed, step), pad_id)
        out = engine.train_batch(batch, loss)
        record = {"step": step + 1, **{k: float(v) for k, v in out.items()}, "seconds": time.perf_counter() - t0}
        done = step + 1 == steps
        if val and ((t.eval_interval and (step + 1) % t.eval_interval == 0) or done):
            record.update(validation_loss(engine, val, pad_id, max(t.global_batch_size // engine.dp_size, 1)))
        log.write(record)
        if (step + 1) % t.log_interval == 0 or done or step == start or "val/loss" in record:
            shown = " ".join(f"{k} {record[k]:.4g}" for k in ("sft_loss", "val/loss", "lr", "grad_norm") if k in record)
            _log(f"  step {step + 1}/{steps}  {shown}  {record['seconds']:.2f}s")
        if (t.save_interval and (step + 1) % t.save_interval == 0) or done:
            save_run_checkpoint(engine, cfg, step + 1, side, template.name, stop_ids)
        last = record
    if start >= steps:
        _log(f"{cfg.save} already holds the final step {steps}: nothing to train")
    if cfg.export_hf_dir and dist.get_rank() == 0:
        from mindspeed_rl.sft.export import export_hf

        export_hf(cfg.save, cfg.export_hf_dir, overwrite=True)
        _log(f"exported HF weights to {cfg.export_hf_dir}")
    _barrier()
    return last


def run_sft(cfg: SFTConfig) -> Dict[str, float]:
    """Run under torchrun (``RANK``/``WORLD_SIZE`` set) on this rank, or spawn ``cfg.world_size``
    local gloo ranks (one process: run here); returns rank 0's last metrics."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return train_sft_rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), cfg)
    if cfg.world_size == 1:
        from mindspeed_rl.utils.net import free_port

        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
        try:
            return train_sft_rank(0, 1, cfg)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    from mindspeed_rl.utils.rank_processes import run_distributed

    return run_distributed(train_sft_rank, cfg.world_size, cfg, timeout=7 * 24 * 3600.0)[0]

