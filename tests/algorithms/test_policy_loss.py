import pytest
import torch

from mindspeed_rl.algorithms import POLICY_LOSSES, PolicyLossConfig, compute_grpo_loss, compute_policy_loss

from tests.algorithms.algo_reference import ref_token_pg_loss

torch.set_num_threads(1)


def _data(seed=0, B=6, T=7, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g) * 3
    logp = old + torch.randn(B, T, generator=g) * spread  # ratios well inside and outside the clip range
    adv = torch.randn(B, T, generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.2).float()
    return logp, old, adv, mask


@pytest.mark.parametrize("low,high,c", [(0.2, 0.2, None), (0.2, 0.28, None), (0.1, 0.3, 3.0), (0.2, 0.2, 1.5)])
def test_clip_loss_matches_reference_token_by_token(low, high, c):
    logp, old, adv, mask = _data()
    cfg = PolicyLossConfig(clip_ratio=0.2, clip_ratio_low=low, clip_ratio_high=high, clip_ratio_c=c)
    out = compute_policy_loss("vanilla", logp, old, adv, mask, cfg)
    n_clip = n_lower = 0
    for b in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            loss, clipped, lower = ref_token_pg_loss(logp[b, t], old[b, t], adv[b, t], low, high, c)
            assert out.loss[b, t].item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
            assert bool(out.clipped[b, t]) == clipped
            assert bool(out.clipped_lower[b, t]) == lower
            n_clip += clipped
            n_lower += lower
    assert n_clip > 0, "test data must exercise the clip"
    if c is not None:
        assert n_lower > 0, "test data must exercise the dual clip"


def test_clip_higher_uses_separate_bounds():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.25, 1.25, 0.75, 0.85]]))
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    cfg = PolicyLossConfig(clip_ratio_low=0.2, clip_ratio_high=0.28)
    out = compute_policy_loss("vanilla", logp, old, adv, torch.ones(1, 4), cfg)
    # ratio 1.25 < 1.28: not clipped for A > 0; ratio .75 < .8 with A < 0: clipped to .8 -> loss .8
    torch.testing.assert_close(out.loss, torch.tensor([[-1.25, -1.25, 0.8, 0.85]]))
    assert out.clipped.tolist() == [[False, False, True, False]]
    sym = compute_policy_loss("vanilla", logp, old, adv, torch.ones(1, 4), PolicyLossConfig(clip_ratio=0.2))
    torch.testing.assert_close(sym.loss[0, :2], torch.tensor([-1.2, -1.2]))


def test_dual_clip_bounds_negative_advantages():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[10.0, 2.0, 10.0]]))
    adv = torch.tensor([[-1.0, -1.0, 1.0]])
    out = compute_policy_loss("vanilla", logp, old, adv, torch.ones(1, 3), PolicyLossConfig(clip_ratio_c=3.0))
    # A < 0: min(max(10, 1.2), 3) = 3 ; max(2, 1.2) = 2 < 3 ; A > 0: max(-10, -1.2) = -1.2
    torch.testing.assert_close(out.loss, torch.tensor([[3.0, 2.0, -1.2]]))
    assert out.clipped_lower.tolist() == [[True, False, False]]


@pytest.mark.parametrize("policy", ["vanilla", "gspo"])
def test_on_policy_first_step_ratio_is_exactly_one(policy):
    logp, _, adv, mask = _data(1)
    cfg = PolicyLossConfig(policy_loss=policy, use_kl_loss=False, clip_ratio_c=3.0)
    for old in (logp.clone(), None):
        x = logp.clone().requires_grad_(True)
        out = compute_policy_loss(policy, x, x.detach() if old is None else old, adv, mask, cfg)
        assert torch.equal(out.log_ratio, torch.zeros_like(out.log_ratio))
        assert not out.clipped.any() and not out.clipped_lower.any()
        loss, metrics = compute_grpo_loss(x, adv, mask, cfg, old_log_prob=old)
        assert metrics["pg_clipfrac"].value.item() == 0.0
        assert metrics["pg_clipfrac_lower"].value.item() == 0.0
        assert metrics["ppo_kl"].value.item() == 0.0
        loss.backward()
        # ratio 1 => d loss / d logp = -A / num_valid_tokens (token-mean), the plain policy gradient
        if policy == "vanilla":
            torch.testing.assert_close(x.grad, -adv * mask / mask.sum())


def test_gspo_uses_sequence_ratio():
    logp, old, adv, mask = _data(2, spread=0.01)
    adv = adv[:, :1].expand_as(adv).contiguous()  # sequence-level advantage, as GRPO gives
    cfg = PolicyLossConfig(policy_loss="gspo", clip_ratio_low=3e-3, clip_ratio_high=4e-3)
    out = compute_policy_loss("gspo", logp, old, adv, mask, cfg)
    for b in range(mask.shape[0]):
        valid = [t for t in range(mask.shape[1]) if mask[b, t]]
        s = torch.exp(sum(logp[b, t] - old[b, t] for t in valid) / len(valid))
        for t in valid:
            want = max(-adv[b, t] * s, -adv[b, t] * torch.clamp(s, 1 - 3e-3, 1 + 4e-3))
            assert out.loss[b, t].item() == pytest.approx(want.item(), rel=1e-5)


def test_registry_and_unknown_name():
    assert {"vanilla", "clip", "gspo"} <= set(POLICY_LOSSES.names())
    with pytest.raises(KeyError, match="rl_config.policy_loss"):
        POLICY_LOSSES.get("ppo2")


def test_bf16_inputs_are_computed_in_fp32():
    logp, old, adv, mask = _data(3)
    cfg = PolicyLossConfig(use_kl_loss=False)
    want, _ = compute_grpo_loss(logp.bfloat16().float(), adv, mask, cfg, old_log_prob=old)
    x = logp.bfloat16().requires_grad_(True)
    got, _ = compute_grpo_loss(x, adv, mask, cfg, old_log_prob=old)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    got.backward()
    assert x.grad.dtype == torch.bfloat16
