"""Scores responses with the rule-based scorer's process pool (hard per-sample timeouts)."""
from __future__ import annotations

from mindspeed_rl.workers.worker_group import BaseWorker


class RewardWorker(BaseWorker):
    def __init__(self, group: str, rank: int, world_size: int, env: dict | None, functions: list, weights: list,
                 num_workers: int, timeout_s: float):
        super().__init__(group, rank, world_size, env)
        from mindspeed_rl.rewards import RewardScorer

        self.scorer = RewardScorer(functions=list(functions), weights=[float(w) for w in weights],
                                   num_workers=num_workers, timeout_s=timeout_s, timeout_score=0.0)

    def score(self, responses: list[str], golds: list[str], extra: list[dict] | None = None):
        return self.scorer.score(responses, golds, extra=extra)

    def shutdown(self) -> None:
        self.scorer.close()
