import pytest
import torch

from mindspeed_rl.engine.rollout.buckets import iter_weight_buckets, tensor_nbytes
from mindspeed_rl.engine.rollout.metrics import logprob_diff, pad_logprobs
from mindspeed_rl.engine.rollout.parallel_plan import (
    gather_in_order, plan_rollout_parallel, shard_bounds, shard_for_replica,
)


def test_plan_tp8pp2_to_tp4_on_16_devices():
    plan = plan_rollout_parallel(16, train_tp=8, train_pp=2, infer_tp=4, devices_per_node=8)
    assert plan.dp_size == 4
    assert plan.tp_groups == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert [plan.dp_rank(r) for r in (0, 3, 4, 15)] == [0, 0, 1, 3]
    assert [plan.tp_rank(r) for r in (0, 3, 4, 15)] == [0, 3, 0, 3]
    assert [r for r in range(16) if plan.is_replica_leader(r)] == [0, 4, 8, 12]
    # Every rank is in exactly one group.
    assert sorted(r for g in plan.tp_groups for r in g) == list(range(16))


@pytest.mark.parametrize("world,tp,pp,itp", [(8, 1, 1, 1), (8, 2, 2, 8), (4, 4, 1, 2), (6, 2, 3, 3)])
def test_plan_groups_cover_world(world, tp, pp, itp):
    plan = plan_rollout_parallel(world, tp, pp, itp)
    assert plan.dp_size * itp == world
    assert all(len(g) == itp for g in plan.tp_groups)
    assert sorted(r for g in plan.tp_groups for r in g) == list(range(world))


def test_plan_errors_name_the_config_key():
    with pytest.raises(ValueError, match="infer_tensor_parallel_size"):
        plan_rollout_parallel(8, 2, 1, 3)
    with pytest.raises(ValueError, match="pipeline_model_parallel_size"):
        plan_rollout_parallel(8, 3, 1, 1)
    with pytest.raises(ValueError, match="spans nodes"):
        plan_rollout_parallel(16, 8, 2, 16, devices_per_node=8)
    with pytest.raises(ValueError, match="positive integer"):
        plan_rollout_parallel(8, 0, 1, 1)
    with pytest.raises(ValueError):
        plan_rollout_parallel(8, 1, 1, 2).dp_rank(8)


@pytest.mark.parametrize("n,dp", [(10, 4), (3, 4), (0, 2), (8, 8), (17, 1)])
def test_shards_are_balanced_contiguous_and_gather_in_order(n, dp):
    items = list(range(n))
    shards = [shard_for_replica(items, dp, r) for r in range(dp)]
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert gather_in_order(shards, n) == items
    assert shard_bounds(n, dp, 0)[0] == 0 and shard_bounds(n, dp, dp - 1)[1] == n
    with pytest.raises(RuntimeError, match="gathered"):
        gather_in_order(shards + [[-1]], n)  # one result too many


def test_buckets_bounded_ordered_complete():
    tensors = [(f"w{i}", torch.zeros(s, dtype=torch.float32)) for i, s in enumerate([10, 30, 5, 100, 1, 1, 60])]
    budget = 40 * 4
    buckets = list(iter_weight_buckets(iter(tensors), budget))
    assert [n for b in buckets for n, _ in b] == [n for n, _ in tensors]
    for b in buckets:
        size = sum(tensor_nbytes(t) for _, t in b)
        assert size <= budget or len(b) == 1  # an oversized tensor travels alone
    assert [[n for n, _ in b] for b in buckets] == [["w0", "w1"], ["w2"], ["w3"], ["w4", "w5"], ["w6"]]
    # Greedy packing: no bucket could have taken the next bucket's first tensor.
    for cur, nxt in zip(buckets, buckets[1:]):
        assert sum(tensor_nbytes(t) for _, t in cur) + tensor_nbytes(nxt[0][1]) > budget
    assert list(iter_weight_buckets([], budget)) == []
    with pytest.raises(ValueError, match="bucket"):
        list(iter_weight_buckets(tensors, 0))
    with pytest.raises(ValueError, match="twice"):
        list(iter_weight_buckets([("a", torch.zeros(1)), ("a", torch.zeros(1))], budget))


def test_buckets_are_lazy():
    consumed = []

    def stream():
        for i in range(6):
            consumed.append(i)
            yield f"w{i}", torch.zeros(4)

    it = iter_weight_buckets(stream(), 2 * 16)
    first = next(it)
    assert [n for n, _ in first] == ["w0", "w1"] and consumed == [0, 1, 2]


def test_logprob_diff_masked():
    rollout, mask = pad_logprobs([[-1.0, -2.0, -3.0], [-0.5]])
    recomputed = rollout.clone()
    recomputed[0, 1] += 0.3
    recomputed[1, 2] += 100.0  # padding: must be ignored
    out = logprob_diff(rollout, recomputed, mask)
    assert out["rollout/logprob_diff_max"] == pytest.approx(0.3, abs=1e-6)
    assert out["rollout/logprob_diff_mean"] == pytest.approx(0.3 / 4, abs=1e-6)
    assert logprob_diff(rollout, recomputed, torch.zeros_like(mask)) == {
        "rollout/logprob_diff_mean": 0.0, "rollout/logprob_diff_max": 0.0}
    with pytest.raises(ValueError, match="shapes"):
        logprob_diff(rollout, recomputed[:, :1], mask)
