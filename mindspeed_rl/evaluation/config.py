"""Typed evaluation settings (``configs/eval/*.yaml``, ``cli/evaluate.py`` flags, trainer validation).

Everything that changes the numbers lives here, and all of it is written beside the numbers in
``report.json`` (see ``runner.run_settings``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from mindspeed_rl.config.errors import ConfigError, Problem
from mindspeed_rl.config.structured import option


@dataclass
class DatasetConfig:
    """Which problems: a preset (math500, aime24, gsm8k) or any json/jsonl/parquet with field names."""

    name: str = option("math500", "Preset (math500, aime24, gsm8k) or any name for your own file (set path and keys)")
    path: Optional[str] = option(None, "File, glob or comma list (json/jsonl/parquet/datasets dir); "
                                       "default: the preset's file under $MINDSPEED_RL_DATA_DIR")
    format: str = option("auto", "auto, json, jsonl, parquet or hf_disk")
    problem_key: Optional[str] = option(None, "Column with the problem text (dotted paths allowed); default from the preset")
    answer_key: Optional[str] = option(None, "Column with the gold answer (a bare answer, a boxed solution or GSM8K '#### x')")
    subject_key: Optional[str] = option(None, "Column to break results down by subject (empty: none)")
    level_key: Optional[str] = option(None, "Column to break results down by level (empty: none)")
    id_key: Optional[str] = option(None, "Column with a stable problem id (empty: the row index)")
    start: int = option(0, "First problem (row index) to evaluate")
    max_problems: Optional[int] = option(None, "Evaluate at most this many problems from `start` (empty: all)")
    choice_seed: int = option(0, "Multiple-choice presets (gpqa_diamond): seed of the per-problem shuffle of the choices")


@dataclass
class EvalSamplingConfig:
    """How responses are sampled (vLLM's SamplingParams names)."""

    temperature: float = option(0.6, "Sampling temperature (0: greedy)")
    top_p: float = option(0.95, "Nucleus sampling mass")
    top_k: int = option(-1, "Top-k sampling (-1: off)")
    min_p: float = option(0.0, "Min-p sampling (0: off)")
    max_tokens: int = option(4096, "Most new tokens per response")
    seed: int = option(0, "Base seed; each problem batch samples with a seed derived from (seed, first problem index)")


@dataclass
class ScorerConfig:
    """How responses are judged (mindspeed_rl.rewards)."""

    functions: list = option(["acc"], "Reward functions run on every sample (the first decides correctness unless "
                                      "correct_function is set)")
    correct_function: Optional[str] = option(None, "Reward function whose score >= correct_threshold means correct")
    correct_threshold: float = option(1.0, "Score of correct_function that counts as correct")
    num_workers: int = option(2, "Scorer processes (0: in-process, no timeout; debugging only)")
    timeout_s: float = option(10.0, "Hard per-sample scoring timeout in seconds (a timeout counts as wrong)")
    answer_format: Literal["math", "choice"] = option(
        "math", "math: final answers are expressions; choice: a letter A-D (extracted answer and maj@k vote key)")


@dataclass
class EngineConfig:
    """The rollout engine the CLI builds (the trainer passes its own)."""

    backend: Literal["hf", "vllm"] = option("hf", "hf (transformers, CPU / small GPU) or vllm (clusters)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = option("auto", "Weights dtype (auto: the checkpoint's)")
    max_batch_size: int = option(64, "hf: most rows (prompts x n) decoded together")
    tensor_parallel_size: int = option(1, "vllm: tensor-parallel size")
    gpu_memory_utilization: float = option(0.85, "vllm: device memory fraction")
    max_model_len: Optional[int] = option(None, "vllm: longest prompt + response (empty: the model's)")


@dataclass
class EvalConfig:
    """One evaluation run: model x dataset x sampling x scorer."""

    model: Optional[str] = option(None, "HF model directory or Megatron checkpoint directory (converted on the fly)")
    tokenizer: Optional[str] = option(None, "Tokenizer directory (default: the model's, or the checkpoint's hf_config/)")
    hf_config_dir: Optional[str] = option(None, "HF directory with config.json (+ tokenizer) for a Megatron checkpoint "
                                                "(required for one converted by MindSpeed-LLM, which has no convert_meta.json)")
    dataset: DatasetConfig = option(DatasetConfig, "Problems to evaluate")
    template: str = option("qwen_r1", "Chat template (configs/model/templates.json)")
    n: int = option(1, "Samples per problem")
    sampling: EvalSamplingConfig = option(EvalSamplingConfig, "Sampling parameters")
    batch_size: int = option(32, "Problems per generate call; also the unit of checkpointing (resume) and of seeding")
    ks: list = option([], "k values for pass@k / maj@k (empty: 1, 2, 4, ..., n)")
    scorer: ScorerConfig = option(ScorerConfig, "Answer checking")
    engine: EngineConfig = option(EngineConfig, "Rollout engine (CLI only)")
    output_dir: Optional[str] = option(None, "Where samples.jsonl, report.json and report.png go "
                                             "(default: outputs/eval/<model>/<dataset>_n<n>_seed<seed>)")
    resume: bool = option(True, "Continue from an existing samples.jsonl written with the same settings")
    overwrite: bool = option(False, "Discard an existing samples.jsonl and start over (wins over resume)")
    chart: bool = option(True, "Write report.png (needs matplotlib)")
    breakdown_fields: list = option([], "Group fields to break down by (empty: every field the data has)")


def check_eval_config(cfg: EvalConfig, source: str = "eval config") -> EvalConfig:
    """Cross-field checks, all problems at once, before any model is loaded."""
    problems = []
    if cfg.n < 1:
        problems.append(Problem("n", cfg.n, "must be >= 1", "sample at least one response per problem"))
    if cfg.batch_size < 1:
        problems.append(Problem("batch_size", cfg.batch_size, "must be >= 1", "use e.g. batch_size=32"))
    bad_ks = [k for k in cfg.ks if not isinstance(k, int) or not 1 <= k <= cfg.n]
    if bad_ks:
        problems.append(Problem("ks", cfg.ks, f"{bad_ks} not in [1, n={cfg.n}]", "use ks within 1..n or raise n"))
    s = cfg.sampling
    if s.temperature < 0:
        problems.append(Problem("sampling.temperature", s.temperature, "must be >= 0", "0 is greedy"))
    if not 0 < s.top_p <= 1:
        problems.append(Problem("sampling.top_p", s.top_p, "must be in (0, 1]", "1.0 turns it off"))
    if s.max_tokens < 1:
        problems.append(Problem("sampling.max_tokens", s.max_tokens, "must be >= 1", "e.g. 4096"))
    if s.temperature == 0 and cfg.n > 1:
        problems.append(Problem("n", cfg.n, "greedy decoding (temperature=0) gives n identical samples",
                                "set sampling.temperature > 0 or n=1"))
    if cfg.dataset.start < 0:
        problems.append(Problem("dataset.start", cfg.dataset.start, "must be >= 0", "rows are counted from 0"))
    if cfg.dataset.max_problems is not None and cfg.dataset.max_problems < 1:
        problems.append(Problem("dataset.max_problems", cfg.dataset.max_problems, "must be >= 1", "leave empty for all"))
    if not cfg.scorer.functions:
        problems.append(Problem("scorer.functions", cfg.scorer.functions, "is empty", "use [acc]"))
    if cfg.scorer.correct_function and cfg.scorer.correct_function not in cfg.scorer.functions:
        problems.append(Problem("scorer.correct_function", cfg.scorer.correct_function,
                                f"not in scorer.functions {cfg.scorer.functions}", "add it to scorer.functions"))
    from .datasets import PRESETS

    preset = PRESETS.get(cfg.dataset.name)
    if preset is not None and preset.kind == "choice" and cfg.scorer.answer_format != "choice":
        problems.append(Problem("scorer.answer_format", cfg.scorer.answer_format,
                                f"dataset {cfg.dataset.name} is multiple choice",
                                f"use --config-name {cfg.dataset.name} (or scorer.answer_format=choice "
                                f"scorer.functions=[{CHOICE_REWARD}])"))
    if problems:
        raise ConfigError(problems, source)
    return cfg


CHOICE_REWARD = "mindspeed_rl.evaluation.choice:choice_accuracy"
