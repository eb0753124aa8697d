"""Helpers for tests: the tiny model (``testing.tiny``) and, re-exported, the gloo rank runner
(``utils.rank_processes``, which the planner's measurement uses too)."""
from mindspeed_rl.utils.rank_processes import DistributedTestError, run_distributed

__all__ = ["run_distributed", "DistributedTestError"]
