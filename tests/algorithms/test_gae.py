"""GAE against the paper's definition, written as plain Python loops (Schulman et al. 2016, eq. 16):
A_t = sum_l (gamma*lam)^l delta_{t+l} over the valid tokens of the row, delta_t = r_t + gamma V_{t+1} - V_t,
V after the last valid token 0; returns = A + V; whitening over all valid tokens of the batch."""
import math
import random

import pytest
import torch

from mindspeed_rl.algorithms import (ADVANTAGE_ESTIMATORS, apply_kl_in_reward, compute_advantages, compute_gae,
                                     scores_to_token_rewards, whiten)

torch.set_num_threads(1)


def ref_gae_row(rewards, values, valid, gamma, lam):
    """One row: the valid positions in order, the direct sum of discounted deltas (no recursion)."""
    pos = [t for t, m in enumerate(valid) if m]
    r = [rewards[t] for t in pos]
    v = [values[t] for t in pos] + [0.0]
    deltas = [r[k] + gamma * v[k + 1] - v[k] for k in range(len(pos))]
    adv = [0.0] * len(valid)
    ret = [0.0] * len(valid)
    for k, t in enumerate(pos):
        adv[t] = sum((gamma * lam) ** l * deltas[k + l] for l in range(len(pos) - k))
        ret[t] = adv[t] + v[k]
    return adv, ret


def ref_whiten(adv, mask):
    xs = [a for row, mrow in zip(adv, mask) for a, m in zip(row, mrow) if m]
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return [[(a - mean) / math.sqrt(var + 1e-8) if m else 0.0 for a, m in zip(row, mrow)] for row, mrow in zip(adv, mask)]


def _batch(seed, holes=False):
    """Rows of lengths 0..7 (right-padded); ``holes``: some interior positions masked as well."""
    rng = random.Random(seed)
    lengths = [0, 1, 3, 7, 5, 2]
    width = 7
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    if holes:
        mask[3, 2] = mask[3, 4] = 0
        mask[4, 0] = 0
    scores = torch.tensor([rng.choice([0.0, 1.0, -0.5]) for _ in lengths])
    values = torch.tensor([[rng.uniform(-1, 1) for _ in range(width)] for _ in lengths])
    return scores, values, mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 1.0), (0.9, 1.0), (1.0, 0.8), (0.95, 0.7), (0.0, 0.5)])
@pytest.mark.parametrize("holes", [False, True])
def test_gae_matches_paper_definition(gamma, lam, holes):
    scores, values, mask = _batch(1, holes)
    # token rewards with a KL-in-reward penalty, so every valid token carries a reward
    old = torch.randn(mask.shape, generator=torch.Generator().manual_seed(3)) * 0.1 - 2
    ref = old + 0.05
    rewards, _ = apply_kl_in_reward(scores_to_token_rewards(scores, mask), old, ref, mask, 0.1, "k1")
    adv, ret = compute_gae(rewards, values, mask, gamma, lam)
    assert adv.dtype == ret.dtype == torch.float32
    for i in range(mask.shape[0]):
        ra, rr = ref_gae_row(rewards[i].tolist(), values[i].tolist(), mask[i].tolist(), gamma, lam)
        assert adv[i].tolist() == pytest.approx(ra, abs=1e-6), (i, gamma, lam)
        assert ret[i].tolist() == pytest.approx(rr, abs=1e-6), (i, gamma, lam)


def test_gamma_lam_one_is_score_minus_value():
    """Open-Reasoner-Zero's setting: every valid token's advantage is score - V_t, its return the score."""
    scores, values, mask = _batch(2)
    adv, ret = compute_gae(scores_to_token_rewards(scores, mask), values, mask, 1.0, 1.0)
    m = mask.bool()
    expected = (scores[:, None] - values) * m
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, scores[:, None].expand_as(values) * m, atol=1e-6)
    assert (adv[~m] == 0).all() and (ret[~m] == 0).all()


def test_values_on_padding_are_ignored():
    scores, values, mask = _batch(4)
    rewards = scores_to_token_rewards(scores, mask)
    noisy = torch.where(mask.bool(), values, torch.full_like(values, 1e3))
    for g, l in [(1.0, 1.0), (0.9, 0.8)]:
        a1, r1 = compute_gae(rewards, values, mask, g, l)
        a2, r2 = compute_gae(rewards, noisy, mask, g, l)
        assert torch.equal(a1, a2) and torch.equal(r1, r2)


def test_whitening_over_valid_tokens():
    scores, values, mask = _batch(5)
    adv, _ = compute_gae(scores_to_token_rewards(scores, mask), values, mask, 0.9, 0.95)
    got = whiten(adv, mask)
    assert got.tolist() == [pytest.approx(r, abs=1e-5) for r in ref_whiten(adv.tolist(), mask.tolist())]
    assert whiten(adv, torch.zeros_like(mask)).abs().sum() == 0


def test_registered_estimator_whitens_and_needs_values():
    scores, values, mask = _batch(6)
    assert "gae" in ADVANTAGE_ESTIMATORS
    adv, _ = compute_gae(scores_to_token_rewards(scores, mask), values, mask, 1.0, 0.9)
    fn = ADVANTAGE_ESTIMATORS.get("gae")
    assert torch.allclose(fn(scores, mask, list(range(6)), values=values, lam=0.9), whiten(adv, mask))
    assert torch.allclose(fn(scores, mask, list(range(6)), values=values, lam=0.9, whiten_advantages=False), adv)
    with pytest.raises(ValueError, match="critic_config"):
        compute_advantages("gae", scores, mask, list(range(6)))


def test_bad_shapes_and_ranges_refused():
    scores, values, mask = _batch(7)
    rewards = scores_to_token_rewards(scores, mask)
    with pytest.raises(ValueError, match="values"):
        compute_gae(rewards, values[:, :3], mask)
    with pytest.raises(ValueError, match="rl_config.gamma"):
        compute_gae(rewards, values, mask, gamma=1.5)
