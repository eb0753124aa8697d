"""The engine-facing losses: what each declares to the engine, and its value on one micro-batch."""
import pytest
import torch

from mindspeed_rl.algorithms import (LOSSES, LossInputs, PolicyLossConfig, build_loss, compute_grpo_loss,
                                     compute_loss_normalizers, grpo_loss, sft_loss)


def _inputs(on_policy: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    lp = (torch.randn(2, 4, generator=g) * 0.1 - 2.0).requires_grad_()
    batch = {"response_mask": mask, "advantages": torch.randn(2, 4, generator=g) * mask,
             "old_log_probs": (lp.detach() + 0.5) * mask, "ref_log_probs": (lp.detach() - 0.2) * mask}
    norms = compute_loss_normalizers(torch.cat([mask, mask]))  # the micro-batch is half its mini-batch
    return LossInputs(lp, torch.full((2, 4), 3.0), batch, norms, on_policy)


def test_grpo_loss_declares_what_the_engine_must_provide():
    loss = grpo_loss(PolicyLossConfig(use_kl_loss=True, loss_norm_length=7))
    assert loss.required_keys == ("advantages", "ref_log_probs") and loss.with_entropy and loss.norm_length == 7
    assert grpo_loss(PolicyLossConfig(use_kl_loss=False)).required_keys == ("advantages",)
    assert not grpo_loss(PolicyLossConfig(), report_entropy=False).with_entropy
    assert grpo_loss(PolicyLossConfig(entropy_coeff=0.01), report_entropy=False).with_entropy  # the bonus needs it
    assert sorted(LOSSES.names()) == ["cross_entropy", "grpo", "ppo", "sft", "value"]


def test_grpo_loss_is_compute_grpo_loss_with_global_normalisers():
    cfg = PolicyLossConfig(kl_loss_coef=0.1, entropy_coeff=0.01)
    for on_policy in (True, False):
        inputs = _inputs(on_policy)
        value, metrics = grpo_loss(cfg)(inputs)
        b = inputs.batch
        want, _ = compute_grpo_loss(inputs.log_probs, b["advantages"], b["response_mask"], cfg,
                                    old_log_prob=None if on_policy else b["old_log_probs"],
                                    ref_log_prob=b["ref_log_probs"], entropy=inputs.entropy,
                                    normalizers=inputs.normalizers)
        assert torch.equal(value, want)
        assert (float(metrics["pg_clipfrac"].value) == 0.0) == on_policy  # old log-probs +0.5: clipped


def test_sft_loss_is_token_mean_nll_over_the_global_batch():
    inputs = _inputs(True)
    loss = sft_loss()
    assert not loss.logit_temperature and not loss.with_entropy and loss.metrics == ("sft_loss",)
    value, metrics = loss(inputs)
    mask = inputs.batch["response_mask"].bool()
    assert value.item() == pytest.approx((-inputs.log_probs[mask]).sum().item() / 10)  # 10 tokens in the mini-batch
    assert metrics["sft_loss"].value.item() == pytest.approx((-inputs.log_probs[mask]).mean().item())


def test_unknown_loss_lists_the_registered_ones():
    with pytest.raises(KeyError, match="unknown training loss 'dpo'; choose one of: cross_entropy, grpo"):
        build_loss("dpo")
