"""One rollout contract for every backend: all prompts in, all results out, in prompt order.

In a colocated job every actor rank holds one member of an inference replica
(:mod:`parallel_plan`). Each replica generates its contiguous share of the prompts; the shares are
all-gathered so that every rank returns the whole result. The split lives here, inside the
engines, so callers never branch on the backend: they hand every rank all the prompts and read the
answer from any rank.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

from mindspeed_rl.engine.rollout.base import RolloutEngine, RolloutOutput, SamplingParams
from mindspeed_rl.engine.rollout.parallel_plan import RolloutParallelPlan, shard_bounds

GenerateFn = Callable[[list[list[int]], SamplingParams, int], list[list[RolloutOutput]]]


def all_gather_objects(obj, group=None) -> list:
    import torch.distributed as dist

    out = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


class ReplicaSplit:
    """Shares prompts out over the plan's replicas and gathers the results back in prompt order.

    Args:
        plan: the rollout layout; None means a single replica (no communication).
        rank: this process's global rank in the plan's world.
        gather_fn: ``obj -> [every rank's obj]`` (default: torch.distributed all_gather_object).
    """

    def __init__(self, plan: RolloutParallelPlan | None, rank: int | None = None,
                 gather_fn: Callable[[object], list] | None = None, gather_group=None) -> None:
        self.plan = plan
        if plan is None:
            self.rank, self.dp_size, self.dp_rank = rank or 0, 1, 0
        else:
            if rank is None:
                import torch.distributed as dist

                rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self.rank, self.dp_size, self.dp_rank = rank, plan.dp_size, plan.dp_rank(rank)
        self._gather = gather_fn or (lambda obj: all_gather_objects(obj, gather_group))

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingParams,
                 generate_share: GenerateFn) -> list[list[RolloutOutput]]:
        """``generate_share(share, sampling, first_prompt_index)`` runs this replica's share and
        returns its results with GLOBAL prompt indices; every rank gets every result."""
        prompts = [list(map(int, p)) for p in prompts]
        start, end = shard_bounds(len(prompts), self.dp_size, self.dp_rank)
        local = generate_share(prompts[start:end], sampling, start) if end > start else []
        if self.dp_size == 1:
            return local
        gathered = self._gather(local)
        # TP peers hold identical results: take each replica's first rank's share, replica order.
        results = [out for r in range(self.dp_size) for out in gathered[self.plan.tp_groups[r][0]]]
        if len(results) != len(prompts):
            raise RuntimeError(f"rollout gathered {len(results)} results for {len(prompts)} prompts")
        for i, group in enumerate(results):
            if any(o.prompt_index != i for o in group):
                raise RuntimeError(f"rollout result {i} belongs to prompt {group[0].prompt_index}: shares out of order")
        return results


class ReplicatedRollout(RolloutEngine):
    """Gives a single-process engine (the HF backend) the pool contract of :class:`ReplicaSplit`."""

    def __init__(self, engine: RolloutEngine, plan: RolloutParallelPlan, rank: int | None = None,
                 gather_fn: Callable[[object], list] | None = None) -> None:
        self.engine = engine
        self.split = ReplicaSplit(plan, rank, gather_fn)

    def generate(self, prompt_token_ids, sampling: SamplingParams) -> list[list[RolloutOutput]]:
        return self.split.generate(prompt_token_ids, sampling, self._generate_share)

    def _generate_share(self, share, sampling, start):
        outputs = self.engine.generate(share, sampling)
        for out in (o for group in outputs for o in group):
            out.prompt_index += start
        return outputs

    def update_weights(self, named_tensors: Iterable) -> int:
        return self.engine.update_weights(named_tensors)

    def sleep(self) -> None:
        self.engine.sleep()

    def wake_up(self, tags=None) -> None:
        self.engine.wake_up(tags)

    @property
    def is_sleeping(self) -> bool:
        return self.engine.is_sleeping

    def shutdown(self) -> None:
        self.engine.shutdown()

    def __getattr__(self, name):  # model, state_dict, ... of the wrapped engine (tests, checks)
        if name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)
