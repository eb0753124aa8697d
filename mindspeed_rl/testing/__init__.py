"""Helpers for tests that need several processes (gloo ranks)."""
from mindspeed_rl.testing.distributed import DistributedTestError, run_distributed

__all__ = ["run_distributed", "DistributedTestError"]
