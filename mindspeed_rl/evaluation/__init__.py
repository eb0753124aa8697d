"""Evaluation: metrics over sampled answers (pass@k, avg@k, maj@k, breakdowns); the CLI lives in cli/evaluate.py."""
from .metrics import (MISSING_GROUP, ProblemResult, available_group_fields, avg_at_k, breakdown, default_ks,
                      group_results, maj_at_k, majority_vote, mean_pass_at_k, pass_at_1, pass_at_k, summarize)

__all__ = [
    "MISSING_GROUP", "ProblemResult", "available_group_fields", "avg_at_k", "breakdown", "default_ks",
    "group_results", "maj_at_k", "majority_vote", "mean_pass_at_k", "pass_at_1", "pass_at_k", "summarize",
]
