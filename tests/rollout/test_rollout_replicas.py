"""The one rollout contract (replicas.py): every rank is given all prompts, its replica generates
its contiguous share, every rank returns all results in prompt order. The gather is simulated
here (each rank's share is computed first, then handed to every rank); the real all-gather over
gloo runs in test_rollout_vllm.py and the trainer tests."""
import pytest

from mindspeed_rl.engine.rollout import SamplingParams, build_rollout_engine
from mindspeed_rl.engine.rollout.parallel_plan import plan_rollout_parallel
from mindspeed_rl.engine.rollout.replicas import ReplicaSplit, ReplicatedRollout
from tests.rollout.rollout_testlib import argmax_decode, tiny_qwen2

PROMPTS = [[1, 2, 3], [4, 5, 6, 7], [8], [9, 10], [11, 12, 13]]


class _Captured(Exception):
    pass


def _pool(rank, plan, gather_fn):
    return build_rollout_engine("hf", model=tiny_qwen2(seed=0), plan=plan, rank=rank) if gather_fn is None else \
        ReplicatedRollout(build_rollout_engine("hf", model=tiny_qwen2(seed=0)), plan, rank, gather_fn)


def test_hf_pool_shares_prompts_and_returns_everything_in_order():
    plan = plan_rollout_parallel(4, train_tp=2, train_pp=2, infer_tp=2)  # replicas {0,1} and {2,3}
    sp = SamplingParams(temperature=0.0, max_tokens=4, n=2)
    shares, seen = {}, {}
    for rank in range(4):
        def capture(local, rank=rank):
            shares[rank] = local
            raise _Captured
        pool = _pool(rank, plan, capture)
        inner = pool.engine.generate
        pool.engine.generate = lambda prompts, s, rank=rank, inner=inner: seen.setdefault(rank, prompts) and inner(prompts, s)
        with pytest.raises(_Captured):
            pool.generate(PROMPTS, sp)
    assert seen[0] == seen[1] == PROMPTS[:3] and seen[2] == seen[3] == PROMPTS[3:]
    everything = [shares[r] for r in range(4)]
    model = tiny_qwen2(seed=0)
    for rank in range(4):
        out = _pool(rank, plan, lambda local: everything).generate(PROMPTS, sp)
        assert [[(o.prompt_index, o.sample_index) for o in g] for g in out] == [[(i, 0), (i, 1)] for i in range(5)]
        for i, g in enumerate(out):
            assert g[0].token_ids == g[1].token_ids == argmax_decode(model, PROMPTS[i], 4)


def test_build_without_plan_is_the_bare_engine_and_with_plan_the_pool():
    from mindspeed_rl.engine.rollout.hf_engine import HFRolloutEngine

    assert isinstance(build_rollout_engine("hf", model=tiny_qwen2(seed=0)), HFRolloutEngine)
    pool = build_rollout_engine("hf", model=tiny_qwen2(seed=0), plan=plan_rollout_parallel(1, 1, 1, 1), rank=0)
    assert isinstance(pool, ReplicatedRollout)
    pool.sleep()
    assert pool.is_sleeping
    with pytest.raises(RuntimeError, match="asleep"):
        pool.generate(PROMPTS, SamplingParams(max_tokens=2))
    pool.wake_up()
    assert len(pool.generate(PROMPTS, SamplingParams(max_tokens=2))) == len(PROMPTS)


def test_misordered_shares_are_an_error():
    plan = plan_rollout_parallel(2, 1, 1, infer_tp=1)
    split = ReplicaSplit(plan, rank=0, gather_fn=lambda local: [local, local])  # rank 1 "returns" rank 0's share
    engine = build_rollout_engine("hf", model=tiny_qwen2(seed=0))

    def share(prompts, sp, start):
        out = engine.generate(prompts, sp)
        for o in (o for g in out for o in g):
            o.prompt_index += start
        return out

    with pytest.raises(RuntimeError, match="out of order|results for"):
        split.generate(PROMPTS, SamplingParams(max_tokens=1), share)
