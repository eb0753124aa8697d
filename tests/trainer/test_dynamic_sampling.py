"""DAPO pieces without Ray: dynamic sampling keeps exactly the varied groups and fills the batch
across generation rounds (cap honoured), and the overlong penalty follows DAPO's formula."""
import pytest
import torch

from mindspeed_rl.algorithms.overlong import mask_truncated, overlong_penalties, overlong_penalty
from mindspeed_rl.engine.rollout import RolloutOutput
from mindspeed_rl.trainer.dynamic_sampling import ScoredRollout, fill_batch, varied_groups, zero_advantage_group_fraction

N = 3  # samples per prompt


def _rollout(rows, rewards_of):
    """A scored round: prompt row r gets rewards ``rewards_of[r]`` (n of them); acc = reward > 0."""
    outputs, texts, scores = [], [], []
    for p, r in enumerate(rows):
        outputs.append([RolloutOutput(p, [r, k], [-0.1, -0.2], "stop", k) for k in range(N)])
        texts += [f"row{r}/sample{k}" for k in range(N)]
        scores += list(rewards_of[r])
    return ScoredRollout(list(rows), [[r] for r in rows], [f"gold{r}" for r in rows], outputs, texts, scores,
                         {"acc": [float(s > 0) for s in scores]}, {"timeouts": 1.0})


# rewards per dataset row: constant rows are 0, 3, 4, 7, 9; varied rows 1, 2, 5, 6, 8, 10, 11
REWARDS = {0: (0, 0, 0), 1: (0, 1, 0), 2: (1, 1, 0.5), 3: (1, 1, 1), 4: (0.5, 0.5, 0.5), 5: (0, 0, 1),
           6: (1, 0, 1), 7: (0, 0, 0), 8: (0.2, 0.1, 0.2), 9: (1, 1, 1), 10: (0, 1, 1), 11: (1, 0, 0)}
VARIED = [1, 2, 5, 6, 8, 10, 11]


def _driver(batches, max_num_gen_batches, target=4):
    """fill_batch over a fixed batch sequence; records the rounds and draws it made."""
    calls, draws = [], []
    it = iter(batches[1:])

    def next_rows():
        draws.append(True)
        return next(it)

    def generate_and_score(rows, round_):
        calls.append((list(rows), round_))
        return _rollout(rows, REWARDS)

    warnings = []
    out, metrics = fill_batch(batches[0], next_rows, generate_and_score, target=target, metric="score",
                              max_num_gen_batches=max_num_gen_batches, warn=warnings.append)
    return out, metrics, calls, draws, warnings


def test_varied_groups_exact():
    values = [0, 0, 0, 1, 0, 1, 0.5, 0.5, 0.5, 2, 2, 2.000001]
    assert varied_groups(values, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]) == [1, 3]


def test_keeps_exactly_the_varied_groups_and_fills_across_rounds():
    batches = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    out, m, calls, draws, warnings = _driver(batches, max_num_gen_batches=10, target=4)
    # round 0 keeps rows 1, 2; round 1 keeps 5, 6 -> full after two rounds, third batch never drawn
    assert [c[1] for c in calls] == [0, 1] and len(draws) == 1 and not warnings
    assert out.prompt_rows == [1, 2, 5, 6]
    assert out.prompts == [[1], [2], [5], [6]] and out.golds == ["gold1", "gold2", "gold5", "gold6"]
    # the rows follow their groups: texts, scores and per-function values, n per prompt, in order
    assert out.texts == [f"row{r}/sample{k}" for r in (1, 2, 5, 6) for k in range(N)]
    assert out.scores == [s for r in (1, 2, 5, 6) for s in REWARDS[r]]
    assert out.per_fn["acc"] == [float(s > 0) for s in out.scores]
    assert out.prompt_index == [p for p in range(4) for _ in range(N)]
    assert all(o.token_ids[0] == r for r, outs in zip(out.prompt_rows, out.outputs) for o in outs)
    assert out.reward_metrics["timeouts"] == 2.0  # summed over both rounds
    assert m["dynamic_sampling/gen_batches"] == 2 and m["dynamic_sampling/groups_kept"] == 4
    assert m["dynamic_sampling/groups_constant"] == 4 and m["dynamic_sampling/groups_dropped"] == 4
    assert m["dynamic_sampling/batch_short"] == 0 and m["dynamic_sampling/prompts_generated"] == 8
    # per-function means over every generated sample (rows 0-7), not only the kept groups
    generated_acc = [float(x > 0) for r in range(8) for x in REWARDS[r]]
    assert m["dynamic_sampling/generated_acc_mean"] == pytest.approx(sum(generated_acc) / len(generated_acc))
    assert m["dynamic_sampling/generated_acc_mean"] < sum(out.per_fn["acc"]) / len(out.per_fn["acc"])


def test_surplus_of_the_last_round_is_dropped():
    batches = [[0, 1, 3, 4], [2, 5, 6, 8]]
    out, m, calls, _, _ = _driver(batches, max_num_gen_batches=0, target=3)
    assert out.prompt_rows == [1, 2, 5]  # 6 and 8 were varied but past the target
    assert m["dynamic_sampling/groups_dropped"] == 5 and m["dynamic_sampling/groups_constant"] == 3


def test_cap_is_honoured_and_trains_on_what_it_has():
    batches = [[0, 1, 3, 4], [7, 9, 2, 0], [5, 6, 8, 10]]
    out, m, calls, draws, warnings = _driver(batches, max_num_gen_batches=2, target=4)
    assert len(calls) == 2 and len(draws) == 1  # the third batch is not generated
    assert out.prompt_rows == [1, 2]
    assert m["dynamic_sampling/batch_short"] == 2 and m["dynamic_sampling/gen_batches"] == 2
    assert len(warnings) == 1 and "only 2 of 4" in warnings[0] and "max_num_gen_batches=2" in warnings[0]


def test_nothing_varied_within_the_cap_gives_no_batch():
    out, m, calls, _, warnings = _driver([[0, 3], [4, 7], [9, 0]], max_num_gen_batches=3, target=2)
    assert out is None and len(calls) == 3 and "skipping" in warnings[0]
    assert m["dynamic_sampling/groups_kept"] == 0


def test_filter_on_a_reward_function():
    # row 2 has rewards (1, 1, 0.5): varied total, constant acc -> dropped when filtering on acc
    rollout = _rollout([1, 2, 8], REWARDS)
    assert varied_groups(rollout.metric_values("score"), rollout.prompt_index) == [0, 1, 2]
    assert varied_groups(rollout.metric_values("acc"), rollout.prompt_index) == [0]
    with pytest.raises(KeyError, match="filter_groups_metric"):
        rollout.metric_values("format")


def test_zero_advantage_group_fraction():
    adv = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.5, 0.5], [-0.5, -0.5], [0.0, 0.0], [0.0, 9.0]])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1], [1, 1], [1, 0]])  # the 9 sits on padding
    assert zero_advantage_group_fraction(adv, mask, [0, 0, 1, 1, 2, 2]) == pytest.approx(2 / 3)


# ---- overlong shaping: DAPO eq. 13, L_max = 20, L_cache = 8 ----------------------------------
@pytest.mark.parametrize("length, expected", [
    (0, 0.0), (12, 0.0),  # up to L_max - L_cache: no penalty
    (13, -1 / 8), (16, -0.5), (19, -7 / 8),  # linear over the buffer
    (20, -1.0),  # at the limit: the full penalty
    (21, -1.0), (100, -1.0),  # past the limit (cannot happen in a rollout): -1
])
def test_overlong_penalty_formula(length, expected):
    assert overlong_penalty(length, 20, 8) == pytest.approx(expected, abs=1e-12)
    assert overlong_penalty(length, 20, 8, factor=0.5) == pytest.approx(0.5 * expected, abs=1e-12)


def test_overlong_penalty_is_continuous_at_the_buffer_edges():
    eps = 1e-9
    f = lambda x: -min(max(x - 12, 0), 8) / 8  # noqa: E731 - the formula, written independently
    assert overlong_penalties(range(0, 25), 20, 8) == pytest.approx([f(x) for x in range(0, 25)], abs=eps)
    # buffer = whole length: the penalty starts at the first token
    assert overlong_penalty(1, 4, 4) == pytest.approx(-0.25)


def test_overlong_penalty_rejects_a_bad_buffer():
    with pytest.raises(ValueError, match="overlong_buffer_len"):
        overlong_penalty(5, 10, 0)
    with pytest.raises(ValueError, match="overlong_buffer_len"):
        overlong_penalty(5, 10, 11)


def test_mask_truncated_zeroes_only_truncated_rows():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    out = mask_truncated(mask, ["stop", "length", "stop"])
    assert out.tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]] and out.dtype == mask.dtype


def test_trainer_hook_draws_extra_batches_from_the_run_sampler_and_skips_an_empty_step(capsys):
    """GRPOTrainer.step with filtering on: extra rounds come from the run's own batch iterator
    (what the checkpointed sampler state counts) with per-round rollout seeds; with nothing varied
    within the cap the step makes no update and says so."""
    from mindspeed_rl.config import load_config
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    trainer = object.__new__(GRPOTrainer)  # no Ray: the step returns before any worker call
    trainer.cfg = load_config("grpo_tiny_cpu", ["rl_config.filter_groups_enable=true", "rl_config.max_num_gen_batches=3",
                                                "megatron_training.global_batch_size=2", "actor_config.mini_batch_size=2"])
    trainer._batches = iter([[4, 7], [9, 0], [3, 3], [1, 2]])
    seen = []

    def generate_and_score(iteration, rows, round_, timer):
        seen.append((iteration, list(rows), round_))
        return _rollout(rows, REWARDS)

    trainer.generate_and_score = generate_and_score
    metrics, exp, texts, golds = trainer.step(5, [0, 3])
    assert seen == [(5, [0, 3], 0), (5, [4, 7], 1), (5, [9, 0], 2)]
    assert next(trainer._batches) == [3, 3]  # exactly two extra batches were drawn
    assert exp is None and texts == [] and metrics["dynamic_sampling/gen_batches"] == 3
    assert "skipping this iteration's update" in capsys.readouterr().out


def test_each_generation_round_has_its_own_reproducible_rollout_seed():
    from mindspeed_rl.config import load_config
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    trainer = object.__new__(GRPOTrainer)
    trainer.cfg = load_config("grpo_tiny_cpu", ["megatron_training.seed=7"])
    trainer.stop_ids = [0]
    trainer.generate = lambda prompts, sampling: sampling["seed"]
    seeds = {(it, r): trainer.rollout([[1]], it, r) for it in (1, 2, 3) for r in (0, 1, 2)}
    assert seeds[(2, 0)] == 7 * 1000003 + 2  # round 0: the seed a run without filtering uses
    assert len(set(seeds.values())) == len(seeds)
    assert trainer.rollout([[1]], 2, 1) == seeds[(2, 1)]
