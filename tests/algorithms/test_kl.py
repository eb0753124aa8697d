import pytest
import torch

from mindspeed_rl.algorithms import KL_ESTIMATORS, apply_kl_in_reward, kl_penalty, scores_to_token_rewards

from tests.algorithms.algo_reference import ref_kl

torch.set_num_threads(1)


@pytest.mark.parametrize("kind", ["k1", "kl", "abs", "k2", "mse", "k3", "low_var_kl"])
def test_estimators_match_formulas(kind):
    g = torch.Generator().manual_seed(0)
    logp, ref = -torch.rand(5, 4, generator=g) * 4, -torch.rand(5, 4, generator=g) * 4
    out = kl_penalty(logp, ref, kind)
    for b in range(5):
        for t in range(4):
            assert out[b, t].item() == pytest.approx(ref_kl(logp[b, t], ref[b, t], kind).item(), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("kind", ["k1", "k3"])
def test_unbiased_estimators_have_expectation_kl_pi_ref(kind):
    """E_{x~pi}[k(x)] = KL(pi || ref) exactly (sum over the support): catches a reversed direction."""
    pi = torch.softmax(torch.tensor([2.0, 0.5, -1.0, 0.0, 1.0]), -1).double()
    ref = torch.softmax(torch.tensor([0.0, 1.5, 0.5, -2.0, 0.3]), -1).double()
    kl_pi_ref = (pi * (pi.log() - ref.log())).sum()
    kl_ref_pi = (ref * (ref.log() - pi.log())).sum()
    expectation = (pi * kl_penalty(pi.log(), ref.log(), kind)).sum()
    torch.testing.assert_close(expectation, kl_pi_ref)
    assert abs(expectation - kl_ref_pi) > 1e-2


def test_k3_is_nonnegative_and_clamped():
    logp = torch.tensor([0.0, -50.0, -1e-3, -30.0])
    ref = torch.tensor([-50.0, 0.0, 0.0, -30.0])
    k3 = kl_penalty(logp, ref, "low_var_kl")
    assert (k3 >= 0).all() and torch.isfinite(k3).all()
    assert k3[1].item() == 10.0  # exp(20) - 21 clamped to 10
    assert k3[3].item() == 0.0
    # gradient stays finite at the clamps
    x = logp.clone().requires_grad_(True)
    kl_penalty(x, ref, "k3").sum().backward()
    assert torch.isfinite(x.grad).all()


def test_scores_to_token_rewards_last_valid_token():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 1], [1, 0, 0]])
    out = scores_to_token_rewards(torch.tensor([1.0, 2.0, 3.0, 4.0]), mask)
    torch.testing.assert_close(out, torch.tensor([[0, 1.0, 0], [0, 0, 0], [0, 0, 3.0], [4.0, 0, 0]]))


def test_kl_in_reward_penalises_every_valid_token():
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, 7.0, 7.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.5, 0.0, 0.0]])
    rewards, metrics = apply_kl_in_reward(torch.tensor([1.0, 0.0]), logp, ref, mask, kl_coef=0.1, estimator="k1")
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.1, 1.0], [0.05, 0.0, 0.0]]))
    assert metrics["kl_in_reward"].value.item() == pytest.approx((0.5 - 1.0 + 0.0 - 0.5) / 4)
    assert metrics["kl_in_reward"].weight.item() == 4


def test_registry_names():
    assert {"k1", "kl", "abs", "k2", "mse", "k3", "low_var_kl"} <= set(KL_ESTIMATORS.names())
    with pytest.raises(KeyError, match="low_var_kl"):
        kl_penalty(torch.zeros(1), torch.zeros(1), "k4")
