"""compute_grpo_loss against the loop reference, and exact invariance to micro-batch / DP layout."""
import pytest
import torch

from mindspeed_rl.algorithms import (AGG_MODES, PolicyLossConfig, aggregate_loss, compute_grpo_loss,
                                     compute_loss_normalizers, pack_metric_sums, reduce_metrics, metric_sums,
                                     unpack_metric_sums, finalize_metric_sums)

from tests.algorithms.algo_reference import ref_aggregate, ref_grpo_loss, valid_rows

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def float64():
    """Layout invariance is checked to ~1e-12, far below fp32 rounding noise."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)

LENGTHS = [5, 0, 1, 9, 3, 9, 1, 6]  # a fully masked row and length-1 responses
B, T = len(LENGTHS), 9


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, T)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1
    old = -torch.rand(B, T, generator=g) * 3
    logp = (old + torch.randn(B, T, generator=g) * 1.2).requires_grad_(True)
    ref = old + torch.randn(B, T, generator=g) * 0.5
    adv = torch.randn(B, 1, generator=g).expand(B, T) * mask
    entropy = (torch.rand(B, T, generator=g) * 2).requires_grad_(True)
    return dict(logp=logp, old=old, ref=ref, adv=adv, entropy=entropy, mask=mask)


def config(mode, policy="vanilla", **kw):
    base = dict(policy_loss=policy, clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0, loss_agg_mode=mode,
                use_kl_loss=True, kl_loss_coef=0.05, kl_loss_type="low_var_kl", entropy_coeff=0.01)
    base.update(kw)
    return PolicyLossConfig(**base)


def run_layout(batch, cfg, ranks, loss_scale=1.0, pad_rows=0):
    """Run compute_grpo_loss on a layout: ``ranks`` = per DP rank, list of micro-batches (row indices).

    Each micro-batch is cut to its own padded width (max valid length); ``pad_rows`` fully masked
    rows full of NaN are appended to every micro-batch, as a DP rank short of samples would.
    Gradients of all micro-batches of all ranks accumulate (SUM) into the same leaf tensors.
    """
    norms = compute_loss_normalizers(batch["mask"], norm_length=cfg.loss_norm_length or T)
    total, records = 0.0, []
    for micro_batches in ranks:
        for rows in micro_batches:
            idx = torch.tensor(rows, dtype=torch.long)
            width = max(1, int(batch["mask"][idx].sum(-1).max()))

            def cut(x, nan_pad=True):
                part = x[idx, :width]
                if pad_rows:
                    pad = torch.full((pad_rows, width), float("nan") if nan_pad else 0.0)
                    part = torch.cat([part, pad])
                return part

            loss, metrics = compute_grpo_loss(
                cut(batch["logp"]), cut(batch["adv"]), cut(batch["mask"], nan_pad=False), cfg,
                old_log_prob=cut(batch["old"]), ref_log_prob=cut(batch["ref"]), entropy=cut(batch["entropy"]),
                normalizers=norms, loss_scale=loss_scale)
            loss.backward()
            total = total + loss.detach()
            records.append(metrics)
    return total, records


def reference(batch, cfg):
    low, high = cfg.clip_ratio_low, cfg.clip_ratio_high
    return ref_grpo_loss(batch["logp"], batch["old"], batch["adv"], batch["ref"], batch["entropy"], batch["mask"],
                         low=low, high=high, c=cfg.clip_ratio_c, mode=cfg.loss_agg_mode,
                         norm_length=cfg.loss_norm_length or T, kl_type=cfg.kl_loss_type,
                         kl_coef=cfg.kl_loss_coef, ent_coef=cfg.entropy_coeff, policy=cfg.policy_loss)


def grads(batch):
    out = (batch["logp"].grad.clone(), batch["entropy"].grad.clone())
    batch["logp"].grad = None
    batch["entropy"].grad = None
    return out


@pytest.mark.parametrize("policy", ["vanilla", "gspo"])
@pytest.mark.parametrize("mode", AGG_MODES)
def test_full_batch_matches_reference_loss_gradient_and_metrics(mode, policy):
    batch = make_batch()
    cfg = config(mode, policy, loss_norm_length=12 if mode == "seq-mean-token-sum-norm" else None)
    loss, records = run_layout(batch, cfg, [[list(range(B))]])
    got_logp, got_ent = grads(batch)
    ref_loss, ref_metrics = reference(batch, cfg)
    ref_loss.backward()
    want_logp, want_ent = grads(batch)
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_logp, want_logp, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got_ent, want_ent, rtol=1e-9, atol=1e-12)
    got = reduce_metrics(records)
    assert got.keys() == ref_metrics.keys()
    for name, value in ref_metrics.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert ref_metrics["pg_clipfrac"] > 0 and ref_metrics["pg_clipfrac_lower"] > 0 or policy == "gspo"


LAYOUTS = {
    "1 micro-batch": [[[0, 1, 2, 3, 4, 5, 6, 7]]],
    "2 micro-batches": [[[0, 1, 2, 3], [4, 5, 6, 7]]],
    "4 micro-batches, shuffled": [[[7, 2], [5, 0], [1, 6], [3, 4]]],
    "8 micro-batches": [[[i] for i in range(B)]],
    "DP2 x 2 micro-batches": [[[0, 5], [2, 7]], [[1, 3], [4, 6]]],
    "DP4 uneven": [[[0, 1, 2]], [[3]], [[4, 5], [6]], [[7]]],
}


@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_loss_and_gradient_do_not_depend_on_layout(mode, layout):
    batch = make_batch(1)
    cfg = config(mode)
    full_loss, full_records = run_layout(batch, cfg, LAYOUTS["1 micro-batch"])
    full_grads = grads(batch)
    loss, records = run_layout(batch, cfg, LAYOUTS[layout], pad_rows=2 if layout.startswith("DP") else 0)
    split_grads = grads(batch)
    torch.testing.assert_close(loss, full_loss, rtol=1e-12, atol=1e-14)
    for a, b in zip(split_grads, full_grads):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    full_metrics, metrics = reduce_metrics(full_records), reduce_metrics(records)
    for name in full_metrics:
        assert metrics[name] == pytest.approx(full_metrics[name], rel=1e-12, abs=1e-14), name


def test_dp_average_with_loss_scale_equals_global_gradient():
    """A DDP that averages gradients over DP ranks needs loss_scale=dp_size to get the global gradient."""
    batch = make_batch(2)
    cfg = config("seq-mean-token-mean")
    run_layout(batch, cfg, LAYOUTS["1 micro-batch"])
    want = grads(batch)[0]
    ranks = LAYOUTS["DP2 x 2 micro-batches"]
    per_rank = []
    for rank in ranks:
        run_layout(batch, cfg, [rank], loss_scale=len(ranks))
        per_rank.append(grads(batch)[0])
    torch.testing.assert_close(sum(per_rank) / len(ranks), want, rtol=1e-12, atol=1e-14)


def test_metric_sums_pack_for_all_reduce():
    batch = make_batch(3)
    cfg = config("token-mean")
    _, full = run_layout(batch, cfg, LAYOUTS["1 micro-batch"])
    names = sorted(full[0])
    packed = torch.zeros(2, len(names))
    for rank in LAYOUTS["DP2 x 2 micro-batches"]:
        _, records = run_layout(batch, cfg, [rank])
        packed += pack_metric_sums(metric_sums(records), names)  # stands in for all_reduce(SUM)
    got = finalize_metric_sums(unpack_metric_sums(packed, names))
    want = reduce_metrics(full)
    for name in names:
        assert got[name] == pytest.approx(want[name], rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregate_loss_modes_match_reference(mode):
    g = torch.Generator().manual_seed(4)
    values = torch.randn(B, T, generator=g)
    mask = make_batch()["mask"]
    got = aggregate_loss(values, mask, mode, compute_loss_normalizers(mask, norm_length=T))
    want = ref_aggregate(valid_rows(values, mask), mode, norm_length=T)
    torch.testing.assert_close(got, torch.as_tensor(want), rtol=1e-12, atol=1e-14)


def test_modes_differ_on_unequal_lengths():
    """Guards against modes silently aliasing each other."""
    batch = make_batch()
    values = {m: aggregate_loss(batch["adv"] + 1.0, batch["mask"], m) for m in AGG_MODES}
    assert len({round(float(v), 9) for v in values.values()}) == len(AGG_MODES)


def test_empty_global_batch_gives_zero_loss_and_finite_grads():
    logp = torch.full((2, 3), float("nan"), requires_grad=True)
    mask = torch.zeros(2, 3)
    for mode in AGG_MODES:
        loss, metrics = compute_grpo_loss(logp, torch.zeros(2, 3), mask, config(mode, use_kl_loss=False,
                                          entropy_coeff=0.0))
        loss.backward()
        assert loss.item() == 0.0 and torch.equal(logp.grad, torch.zeros(2, 3))
        assert all(m.weight.item() == 0 for m in metrics.values())
        logp.grad = None


def test_missing_inputs_are_named():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="use_kl_loss"):
        compute_grpo_loss(x, x, torch.ones(1, 2), config("token-mean", entropy_coeff=0.0))
    with pytest.raises(ValueError, match="entropy_coeff"):
        compute_grpo_loss(x, x, torch.ones(1, 2), config("token-mean", use_kl_loss=False))
