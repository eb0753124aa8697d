"""The driver-side groups deal a batch out by EngineLayout and put the results back in row order.

A recording group stands in for Ray here (the e2e tests in tests/trainer run the real one): each
"rank" answers from the rows it was sent, so a wrong shard, a result kept from a rank that does
not return outputs, or rows put back in the wrong place all show up in the reassembled tensor."""
import pytest
import torch

from mindspeed_rl.engine.layout import EngineLayout
from mindspeed_rl.workers.groups import ActorGroup, ReferenceGroup, RewardGroup, RewardScores


class RecordingGroup:
    """Ranks that answer like the workers do: log-probs = the row's id, only on output ranks."""

    def __init__(self, layouts):
        self.name, self.world_size, self.layouts, self.calls = "actor_rollout", len(layouts), layouts, []
        self.workers = [object()] * len(layouts)

    def run_per_rank(self, method, per_rank_args):
        self.calls.append((method, per_rank_args))
        out = []
        for layout, (batch, *rest) in zip(self.layouts, per_rank_args):
            if method == "compute_log_probs":
                rows = batch["row_id"].float().unsqueeze(-1).expand(-1, 3)[:, :2]  # narrower than the batch
                out.append({"log_probs": rows + (100.0 if rest[0] == "ref" else 0.0)} if layout.returns_outputs else None)
            elif method == "update":
                out.append({"pg_loss": 1.5, "rows_on_rank_0": len(batch["row_id"])} if layout.dp_rank == 0 and
                           layout.tp_rank == 0 else None)
        return out

    def run(self, method, *args, **kwargs):
        self.calls.append((method, args))
        if method == "score":
            return [([1.0, 0.0], {"acc": [1.0, 0.0]}, {"timeouts": 0})]
        if method == "generate":  # two replicas report their shares, out of order
            return [(2, [["c"], ["d"]]), None, (0, [["a"], ["b"]]), None]
        return [None] * self.world_size


def layouts_dp2_tp2():
    return [EngineLayout(dp_rank=r // 2, dp_size=2, tp_rank=r % 2, tp_size=2, pp_rank=0, pp_size=1) for r in range(4)]


def batch(n=6, width=4):
    lengths = torch.tensor([5, 1, 4, 2, 6, 3])[:n]
    attention = (torch.arange(8).unsqueeze(0) < lengths.unsqueeze(1)).long()
    return {"input_ids": torch.zeros(n, 8, dtype=torch.long), "attention_mask": attention,
            "response_mask": torch.ones(n, width, dtype=torch.long), "row_id": torch.arange(n)}


def test_log_probs_come_back_in_row_order_from_output_ranks_only():
    ranks = RecordingGroup(layouts_dp2_tp2())
    actor = ActorGroup(ranks, ranks.layouts, with_reference=True)
    out = actor.compute_log_probs(batch())
    assert out.shape == (6, 4)
    assert torch.equal(out[:, :2], torch.arange(6).float().unsqueeze(-1).expand(-1, 2))
    assert (out[:, 2:] == 0).all()  # a rank's narrower result is zero-padded, not shifted
    sent = [args[0]["row_id"].tolist() for args in ranks.calls[-1][1]]
    assert sent[0] == sent[1] and sent[2] == sent[3]  # TP peers get the same shard
    assert sorted(sent[0] + sent[2]) == list(range(6))  # DP ranks split the rows
    ref = actor.reference().compute_log_probs(batch())
    assert torch.equal(ref[:, :2], out[:, :2] + 100.0)  # the colocated reference engine was asked


def test_update_keeps_the_global_mini_batches_and_returns_one_rank_metrics():
    ranks = RecordingGroup(layouts_dp2_tp2())
    actor = ActorGroup(ranks, ranks.layouts, with_reference=False)
    metrics = actor.update(batch(), num_mini_batches=2, epochs=3)
    method, per_rank = ranks.calls[-1]
    assert method == "update" and per_rank[0][1:] == (2, 3)
    dp0, dp1 = per_rank[0][0]["row_id"].tolist(), per_rank[2][0]["row_id"].tolist()
    assert metrics == {"pg_loss": 1.5, "rows_on_rank_0": len(dp0)}  # the one reporting rank's answer
    assert sorted(dp0 + dp1) == list(range(6))
    # each rank's shard is its part of global mini-batch 0 (rows 0-2), then of mini-batch 1 (rows 3-5)
    for rows in (dp0, dp1):
        assert rows == sorted(rows, key=lambda r: r >= 3) and {r < 3 for r in rows} == {True, False}
    with pytest.raises(RuntimeError, match="without a colocated reference"):
        actor.reference()


def test_generate_tiles_replica_shares_in_prompt_order():
    ranks = RecordingGroup(layouts_dp2_tp2())
    actor = ActorGroup(ranks, ranks.layouts, with_reference=False)
    assert actor.generate([[1], [2], [3], [4]], {"n": 1}) == [["a"], ["b"], ["c"], ["d"]]
    with pytest.raises(RuntimeError, match="3 prompts"):
        actor.generate([[1], [2], [3]], {"n": 1})


def test_reward_scores_are_typed_and_layouts_must_agree():
    ranks = RecordingGroup(layouts_dp2_tp2())
    scores = RewardGroup(ranks).score(["x", "y"], ["1", "2"])
    assert scores == RewardScores([1.0, 0.0], {"acc": [1.0, 0.0]}, {"timeouts": 0})
    with pytest.raises(RuntimeError, match="layouts"):
        ReferenceGroup(ranks, ranks.layouts[:3])
