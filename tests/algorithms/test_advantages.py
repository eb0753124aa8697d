import random

import pytest
import torch

from mindspeed_rl.algorithms import ADVANTAGE_ESTIMATORS, compute_advantages, grpo_advantages, rloo_advantages

from tests.algorithms.algo_reference import ref_group_advantages, ref_rloo_advantages

torch.set_num_threads(1)


def _batch(seed=0):
    """Shuffled groups of sizes 4, 3, 1, 5 (one all-equal), rows of one prompt not adjacent."""
    rng = random.Random(seed)
    rows = []
    for gid, size in [("p0", 4), ("p1", 3), ("p2", 1), ("p3", 5), ("p4", 3)]:
        for _ in range(size):
            score = 0.7 if gid == "p4" else rng.choice([0.0, 1.0, 0.5, rng.uniform(-1, 2)])
            rows.append((gid, score))
    rng.shuffle(rows)
    ids = [g for g, _ in rows]
    scores = [s for _, s in rows]
    lengths = [rng.randint(0, 6) for _ in rows]  # 0 = fully masked row
    mask = torch.zeros(len(rows), 6)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return ids, scores, mask


@pytest.mark.parametrize("use_std", [True, False])
def test_grpo_matches_reference_with_shuffled_groups(use_std):
    ids, scores, mask = _batch()
    name = "grpo" if use_std else "dr_grpo"
    adv = compute_advantages(name, torch.tensor(scores), mask, ids, epsilon=1e-6)
    expected = ref_group_advantages(scores, ids, eps=1e-6, use_std=use_std)
    assert adv.shape == mask.shape and adv.dtype == torch.float32
    for i in range(len(ids)):
        for t in range(mask.shape[1]):
            want = expected[i] if mask[i, t] else 0.0
            assert adv[i, t].item() == pytest.approx(want, abs=1e-6, rel=1e-6)


def test_integer_tensor_ids_and_string_ids_agree():
    ids, scores, mask = _batch(1)
    to_int = {g: k * 7 + 3 for k, g in enumerate(sorted(set(ids)))}
    a = grpo_advantages(torch.tensor(scores), mask, ids)
    b = grpo_advantages(torch.tensor(scores), mask, torch.tensor([to_int[g] for g in ids]))
    assert torch.equal(a, b)


def test_permuting_rows_permutes_advantages():
    ids, scores, mask = _batch(2)
    a = grpo_advantages(torch.tensor(scores), mask, ids)
    perm = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))
    b = grpo_advantages(torch.tensor(scores)[perm], mask[perm], [ids[i] for i in perm])
    torch.testing.assert_close(b, a[perm], rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_constant_group_and_group_of_one_give_exact_zero(name):
    # 0.1 three times: the float mean is not exactly 0.1, the advantage must still be exactly 0.
    scores = torch.tensor([0.1, 0.1, 0.1, 5.0, 1.0, 1.0])
    ids = ["a", "a", "a", "b", "c", "c"]
    adv = compute_advantages(name, scores, torch.ones(6, 3), ids)
    assert torch.count_nonzero(adv) == 0


def test_std_normalisation_values():
    # group {1, 0}: mean .5, unbiased std sqrt(.5); group {1, 0, 0, 0}: mean .25, std .5
    scores = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    ids = [0, 0, 1, 1, 1, 1]
    adv = grpo_advantages(scores, torch.ones(6, 1), ids, epsilon=0.0)[:, 0]
    s = 0.5 ** 0.5
    torch.testing.assert_close(adv, torch.tensor([0.5 / s, -0.5 / s, 1.5, -0.5, -0.5, -0.5]))


def test_rloo_matches_reference():
    ids, scores, mask = _batch(3)
    adv = rloo_advantages(torch.tensor(scores), mask, ids)
    expected = ref_rloo_advantages(scores, ids)
    for i in range(len(ids)):
        row = adv[i][mask[i] > 0]
        assert torch.allclose(row, torch.full_like(row, expected[i]), atol=1e-6)


def test_token_level_rewards_are_summed_over_valid_tokens():
    mask = torch.tensor([[1.0, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
    token_rewards = torch.tensor([[0.5, 0.5, 9.0], [0.0, 0.0, 3.0], [2.0, 9, 9], [0, 0, 0]])
    # padding value 9 must be ignored: scores are 1, 3 | 2, 0
    adv = grpo_advantages(token_rewards, mask, ["x", "x", "y", "y"], epsilon=0.0)
    expected = ref_group_advantages([1.0, 3.0, 2.0, 0.0], ["x", "x", "y", "y"], eps=0.0)
    torch.testing.assert_close(adv, torch.tensor(expected).unsqueeze(-1) * mask)


def test_errors_name_the_problem():
    with pytest.raises(KeyError, match="rl_config.advantage_estimator.*grpo"):
        compute_advantages("vtrace", torch.zeros(2), torch.ones(2, 2), [0, 0])
    with pytest.raises(ValueError, match="3 entries but the batch has 2"):
        grpo_advantages(torch.zeros(2), torch.ones(2, 2), [0, 0, 1])
    assert {"grpo", "dr_grpo", "rloo"} <= set(ADVANTAGE_ESTIMATORS.names())
