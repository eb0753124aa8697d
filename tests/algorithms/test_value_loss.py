"""The clipped value loss against a loop reference from the PPO paper / verl's compute_value_loss,
and its normalisation by the global mini-batch (shares of split micro-batches sum to the whole)."""
import random

import pytest
import torch

from mindspeed_rl.algorithms import LOSSES, LossInputs, LossNormalizers, ValueLossConfig, value_loss
from mindspeed_rl.algorithms.losses import build_loss

torch.set_num_threads(1)


def ref_value_loss(v, old, ret, mask, eps):
    """token-mean of 0.5*max((v-R)^2, (clip(v, old-eps, old+eps)-R)^2), clip fraction, mean v."""
    total = clipped = vsum = 0.0
    n = 0
    for i in range(len(v)):
        for t in range(len(v[i])):
            if not mask[i][t]:
                continue
            vc = min(max(v[i][t], old[i][t] - eps), old[i][t] + eps)
            l1, l2 = (v[i][t] - ret[i][t]) ** 2, (vc - ret[i][t]) ** 2
            total += 0.5 * max(l1, l2)
            clipped += l2 > l1
            vsum += v[i][t]
            n += 1
    return total / n, clipped / n, vsum / n


def _data(seed=0):
    rng = random.Random(seed)
    n, w = 6, 5
    mask = torch.zeros(n, w, dtype=torch.long)
    for i, length in enumerate([5, 0, 2, 4, 1, 3]):
        mask[i, :length] = 1
    old = torch.tensor([[rng.uniform(-1, 1) for _ in range(w)] for _ in range(n)])
    v = old + torch.tensor([[rng.uniform(-0.6, 0.6) for _ in range(w)] for _ in range(n)])
    ret = torch.tensor([[rng.choice([0.0, 1.0]) for _ in range(w)] for _ in range(n)])
    return v, old, ret, mask


def _inputs(v, old, ret, mask, num_tokens):
    batch = {"response_mask": mask, "old_values": old, "returns": ret}
    return LossInputs(None, None, batch, LossNormalizers(float(num_tokens), 0.0, 1.0), True, values=v)


@pytest.mark.parametrize("eps", [0.2, 0.5, 10.0])
def test_value_loss_matches_reference(eps):
    v, old, ret, mask = _data()
    v.requires_grad_(True)
    loss = value_loss(ValueLossConfig(cliprange_value=eps))
    assert loss.output == "values" and set(loss.required_keys) == {"returns", "old_values"}
    out, metrics = loss(_inputs(v, old, ret, mask, mask.sum()))
    want_loss, want_clip, want_v = ref_value_loss(v.tolist(), old.tolist(), ret.tolist(), mask.tolist(), eps)
    assert float(out.detach()) == pytest.approx(want_loss, rel=1e-6)
    assert float(metrics["vf_loss"].value) == pytest.approx(want_loss, rel=1e-6)
    assert float(metrics["vf_clipfrac"].value) == pytest.approx(want_clip, abs=1e-9)
    assert float(metrics["vpred_mean"].value) == pytest.approx(want_v, rel=1e-6)
    if eps == 0.2:
        assert 0 < want_clip < 1  # the data exercises both branches
    out.backward()
    assert (v.grad[~mask.bool()] == 0).all()


def test_shares_of_micro_batches_sum_to_the_mini_batch_loss():
    v, old, ret, mask = _data(1)
    loss = build_loss("value", ValueLossConfig(0.3))
    total = float(mask.sum())
    whole, _ = loss(_inputs(v, old, ret, mask, total))
    parts = sum(float(loss(_inputs(v[s], old[s], ret[s], mask[s], total))[0]) for s in (slice(0, 2), slice(2, 6)))
    assert parts == pytest.approx(float(whole), rel=1e-6)
    assert "value" in LOSSES


def test_bad_clip_range_refused():
    with pytest.raises(ValueError, match="critic_config.cliprange_value"):
        ValueLossConfig(cliprange_value=0.0)


def test_unclipped_tokens_are_never_counted_as_clipped():
    """Where |v - v_old| <= eps the clipped value is v itself, so rounding of v_old + (v - v_old)
    cannot set the clip flag (it made vf_clipfrac depend on the micro-batching)."""
    from mindspeed_rl.algorithms.value_loss import value_loss_terms

    g = torch.Generator().manual_seed(0)
    old = torch.rand(20000, generator=g) * 0.3
    values = torch.rand(20000, generator=g) * 0.3  # |v - old| < 0.3 < eps, often inexact in float32
    returns = torch.rand(20000, generator=g)
    assert not torch.equal(old + (values - old), values)  # the rounding this guards against
    loss, clipped = value_loss_terms(values, old, returns, 0.5)
    assert not clipped.any()
    assert torch.equal(loss, 0.5 * (values - returns) ** 2)
