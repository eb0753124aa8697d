"""The SFT run config (``configs/sft/*.yaml``), typed, with every cross-field rule checked before a
process starts. Sections: ``model`` (weights and HF side files), ``data`` (rows, template, length
rule), ``train`` (layout, batch, optimizer, schedule, loss), and where things are written."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from mindspeed_rl.config.errors import ConfigError, Problem
from mindspeed_rl.config.structured import option

SFT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "sft"


@dataclass
class SFTModelConfig:
    load: Optional[str] = option(None, "Megatron checkpoint converted at train.tp/pp (tools/convert hf2mcore), "
                                       "or a HF model directory (converted at start into <save>/init_mcore)")
    hf_config_dir: Optional[str] = option(None, "HF directory with config.json and the tokenizer (default: "
                                                "model.load when it is a HF dir, else its hf_config/)")


@dataclass
class SFTDataConfig:
    train_path: Optional[str] = option(None, "jsonl / json / parquet (or a glob) of prompt+response or chat-message rows")
    val_path: Optional[str] = option(None, "held-out rows for the validation loss (empty: none)")
    format: Literal["auto", "json", "jsonl", "parquet"] = option("auto", "file format (auto: by suffix)")
    prompt_key: str = option("prompt", "column of the prompt (text or a list of chat messages)")
    response_key: str = option("response", "column of the response (the assistant's reply to learn)")
    messages_key: str = option("messages", "column of a whole conversation [{role, content}, ...]; "
                                           "used when a row has it: every assistant turn is learned")
    template: str = option("qwen_r1", "chat template (configs/model/templates.json) that renders the prompt")
    templates_path: Optional[str] = option(None, "another templates JSON file")
    system: Optional[str] = option(None, "system prompt (default: the template's)")
    seq_length: int = option(4096, "longest prompt + response in tokens")
    truncate: bool = option(False, "cut rows longer than seq_length at the end (default: refuse them, naming the row)")
    max_rows: int = option(0, "use only the first rows of train_path (0: all)")


@dataclass
class SFTTrainConfig:
    tensor_model_parallel_size: int = option(1, "TP")
    pipeline_model_parallel_size: int = option(1, "PP")
    data_parallel_size: int = option(1, "DP (world size = TP x PP x DP; under torchrun it must agree)")
    global_batch_size: int = option(32, "rows per optimizer step, over all DP ranks")
    micro_batch_size: int = option(1, "rows per micro-batch (when max_tokens_per_micro_batch is 0)")
    max_tokens_per_micro_batch: int = option(0, "token budget per micro-batch (rows of similar length packed "
                                                "together, each micro-batch padded only to its own longest row); 0: off")
    train_iters: int = option(0, "optimizer steps (0: from epochs)")
    epochs: float = option(1.0, "passes over the data when train_iters is 0")
    lr: float = option(1e-5, "peak learning rate")
    min_lr: float = option(0.0, "final learning rate of the decay")
    lr_decay_style: Literal["constant", "linear", "cosine"] = option("cosine", "schedule after warm-up")
    lr_warmup_fraction: float = option(0.03, "share of the steps spent warming up linearly")
    weight_decay: float = option(0.0, "AdamW weight decay")
    adam_beta1: float = option(0.9, "Adam beta1")
    adam_beta2: float = option(0.999, "Adam beta2")
    adam_eps: float = option(1e-8, "Adam epsilon")
    clip_grad: float = option(1.0, "gradient-norm clip")
    params_dtype: Literal["fp32", "bf16", "fp16"] = option("bf16", "training dtype")
    use_distributed_optimizer: bool = option(False, "shard the optimizer state over DP")
    sequence_parallel: bool = option(False, "Megatron sequence parallelism (TP > 1)")
    recompute_granularity: Optional[Literal["full", "selective"]] = option(None, "activation recompute")
    label_smoothing: float = option(0.0, "eps: loss = (1-eps) NLL + eps mean over the vocab of -log p")
    seed: int = option(1234, "seed of the data order and the model's RNG")
    eval_interval: int = option(0, "validation loss every N steps and at the end (0: only at the end)")
    log_interval: int = option(1, "print a line every N steps")
    save_interval: int = option(0, "checkpoint every N steps (0: only at the end)")


@dataclass
class SFTConfig:
    model: SFTModelConfig = option(SFTModelConfig, "the starting weights")
    data: SFTDataConfig = option(SFTDataConfig, "training and validation rows")
    train: SFTTrainConfig = option(SFTTrainConfig, "layout, batch, optimizer")
    save: Optional[str] = option(None, "run checkpoints (resumed from when it holds one)")
    log_dir: Optional[str] = option(None, "metrics.jsonl (default: <save>/logs)")
    export_hf_dir: Optional[str] = option(None, "write the final weights as a HF directory here")
    resume: bool = option(True, "continue from the latest checkpoint in save")

    @property
    def world_size(self) -> int:
        t = self.train
        return t.tensor_model_parallel_size * t.pipeline_model_parallel_size * t.data_parallel_size


def total_steps(cfg: SFTConfig, train_rows: int) -> int:
    """Optimizer steps of the run: ``train_iters`` or ``ceil(epochs x rows / global_batch_size)``."""
    if cfg.train.train_iters > 0:
        return cfg.train.train_iters
    return max(1, math.ceil(cfg.train.epochs * train_rows / cfg.train.global_batch_size))


def check_sft_config(cfg: SFTConfig, source: str = "sft config") -> SFTConfig:
    """All cross-field problems at once, each naming the key and the fix."""
    p: list[Problem] = []
    t, d = cfg.train, cfg.data
    if not cfg.model.load:
        p.append(Problem("model.load", None, "is required", "give a converted Megatron checkpoint or a HF model directory"))
    if not d.train_path:
        p.append(Problem("data.train_path", None, "is required", "give a jsonl/parquet file of prompt/response rows"))
    if not cfg.save:
        p.append(Problem("save", None, "is required", "give a directory for the run checkpoints"))
    for key in ("tensor_model_parallel_size", "pipeline_model_parallel_size", "data_parallel_size",
                "global_batch_size", "micro_batch_size", "log_interval"):
        if getattr(t, key) < 1:
            p.append(Problem(f"train.{key}", getattr(t, key), "must be >= 1", "use a positive integer"))
    if t.data_parallel_size >= 1 and t.global_batch_size % t.data_parallel_size:
        p.append(Problem("train.global_batch_size", t.global_batch_size,
                         f"is not a multiple of train.data_parallel_size={t.data_parallel_size}",
                         "each DP rank must get the same number of rows"))
    if t.max_tokens_per_micro_batch and t.max_tokens_per_micro_batch < d.seq_length:
        p.append(Problem("train.max_tokens_per_micro_batch", t.max_tokens_per_micro_batch,
                         f"is below data.seq_length={d.seq_length}", "raise it to at least the longest row"))
    if not 0.0 <= t.label_smoothing < 1.0:
        p.append(Problem("train.label_smoothing", t.label_smoothing, "must be in [0, 1)", "use 0 (off) or e.g. 0.1"))
    if not 0.0 <= t.lr_warmup_fraction < 1.0:
        p.append(Problem("train.lr_warmup_fraction", t.lr_warmup_fraction, "must be in [0, 1)", "e.g. 0.03-0.1"))
    if t.train_iters < 0 or t.epochs <= 0:
        p.append(Problem("train.epochs", t.epochs, "epochs must be > 0 and train_iters >= 0", "fix the schedule"))
    if t.sequence_parallel and t.tensor_model_parallel_size == 1:
        p.append(Problem("train.sequence_parallel", True, "needs tensor_model_parallel_size > 1", "turn it off at TP1"))
    if d.seq_length < 2:
        p.append(Problem("data.seq_length", d.seq_length, "must be >= 2", "use the longest row you train on"))
    for key in ("eval_interval", "save_interval"):
        if getattr(t, key) < 0:
            p.append(Problem(f"train.{key}", getattr(t, key), "must be >= 0", "0 means only at the end"))
    if p:
        raise ConfigError(p, source=source)
    return cfg


def load_sft_config(config_name: str, overrides: list[str] | None = None, config_dir=None) -> SFTConfig:
    """Hydra-compose ``configs/sft/<config_name>.yaml`` with ``key=value`` overrides, typed and checked."""
    from mindspeed_rl.config.loader import compose_dict
    from mindspeed_rl.config.structured import from_dict

    forced = [o if o.startswith(("+", "~")) or "=" not in o else f"++{o}" for o in overrides or []]
    data = compose_dict(config_name, forced, config_dir or SFT_CONFIG_DIR)
    source = f"sft config '{config_name}'"
    return check_sft_config(from_dict(SFTConfig, data, source=source), source)
