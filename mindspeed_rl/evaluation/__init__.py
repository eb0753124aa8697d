"""Evaluation: pass@1 / avg@k / pass@k / maj@k of a model on math sets, and validation in training.

Library (import light: no torch / transformers / vLLM at import time)::

    from mindspeed_rl.evaluation import EvalConfig, evaluate, Validator
    report = evaluate(rollout_engine, tokenizer, cfg)   # samples.jsonl (resumable), report.json, report.png
    metrics = Validator([cfg], tokenizer)(rollout_engine, step)   # {"val/math500/pass@1": ...}

The command line is ``cli/evaluate.py``; metrics definitions are in ``metrics``.
"""
from .config import DatasetConfig, EngineConfig, EvalConfig, EvalSamplingConfig, ScorerConfig, check_eval_config
from .datasets import PRESETS, EvalProblem, LoadedDataset, load_problems
from .judging import Judge, answer_key
from .metrics import (MISSING_GROUP, ProblemResult, available_group_fields, avg_at_k, breakdown, default_ks,
                      group_results, maj_at_k, majority_vote, mean_pass_at_k, pass_at_1, pass_at_k, summarize)
from .records import ResumeError, SampleStore
from .runner import EvalReport, batch_seed, evaluate
from .validation import Validator, flatten_metrics, validate, validation_configs

__all__ = [
    "DatasetConfig", "EngineConfig", "EvalConfig", "EvalSamplingConfig", "ScorerConfig", "check_eval_config",
    "PRESETS", "EvalProblem", "LoadedDataset", "load_problems", "Judge", "answer_key",
    "ResumeError", "SampleStore", "EvalReport", "batch_seed", "evaluate", "Validator", "flatten_metrics", "validate", "validation_configs",
    "MISSING_GROUP", "ProblemResult", "available_group_fields", "avg_at_k", "breakdown", "default_ks",
    "group_results", "maj_at_k", "majority_vote", "mean_pass_at_k", "pass_at_1", "pass_at_k", "summarize",
]
