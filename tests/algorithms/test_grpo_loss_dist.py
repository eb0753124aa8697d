"""GRPO loss on real gloo DP ranks: local counts all-reduced into global normalisers, gradients
all-reduced, equals the single-process full-batch gradient."""
import pytest
import torch

from mindspeed_rl.algorithms import (LossNormalizers, PolicyLossConfig, compute_grpo_loss, compute_loss_normalizers,
                                     finalize_metric_sums, metric_sums, pack_metric_sums, reduce_metrics,
                                     unpack_metric_sums)
from mindspeed_rl.testing import run_distributed

B, T, D = 7, 6, 4
LENGTHS = [6, 1, 0, 4, 6, 2, 3]
CFG = dict(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0, use_kl_loss=True, kl_loss_coef=0.1,
           entropy_coeff=0.0)


def _batch():
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(B, T, dtype=torch.float64)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1
    feats = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 2
    ref = old + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, 1, generator=g, dtype=torch.float64).expand(B, T) * mask
    w0 = 0.5 * torch.randn(D, generator=g, dtype=torch.float64)
    return mask, feats, old, ref, adv, w0


def _local_grad(rows, mode, normalizers, loss_scale, micro_batch_size, pad_to):
    """One DP rank: its rows in micro-batches (the last one padded with a fully masked NaN row)."""
    mask, feats, old, ref, adv, w0 = _batch()
    w = w0.clone().requires_grad_(True)
    cfg = PolicyLossConfig(loss_agg_mode=mode, **CFG)
    records = []
    rows = list(rows) + [None] * (pad_to - len(rows))
    for start in range(0, len(rows), micro_batch_size):
        chunk = rows[start:start + micro_batch_size]
        real = torch.tensor([r for r in chunk if r is not None], dtype=torch.long)
        n_pad = sum(r is None for r in chunk)

        def take(x, fill):
            pad = torch.full((n_pad,) + tuple(x.shape[1:]), fill, dtype=x.dtype)
            return torch.cat([x[real], pad])

        logp = take(old, float("nan")) + take(feats, 1e3) @ w  # pad rows: garbage log-probs
        loss, metrics = compute_grpo_loss(logp, take(adv, 0.0), take(mask, 0.0), cfg, old_log_prob=take(old, 0.0),
                                          ref_log_prob=take(ref, 0.0), normalizers=normalizers, loss_scale=loss_scale)
        loss.backward()
        records.append(metrics)
    return w.grad, records


MODES = ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


def dp_rank(rank, world_size):
    return {mode: _dp_rank_mode(rank, world_size, mode) for mode in MODES}


def _dp_rank_mode(rank, world_size, mode):
    import torch.distributed as dist

    mask = _batch()[0]
    rows = list(range(rank, B, world_size))
    # every rank counts its own rows; one all-reduce makes the global normalisers
    counts = compute_loss_normalizers(mask[rows]).to_tensor()
    dist.all_reduce(counts)
    norms = LossNormalizers.from_tensor(counts, norm_length=T)
    pad_to = -(-B // world_size)
    results = {}
    for reduction in ("sum", "avg"):
        scale = 1.0 if reduction == "sum" else float(world_size)
        grad, records = _local_grad(rows, mode, norms, scale, micro_batch_size=2, pad_to=pad_to)
        dist.all_reduce(grad)
        results[reduction] = grad if reduction == "sum" else grad / world_size
    names = sorted(records[0])
    packed = pack_metric_sums(metric_sums(records), names)
    dist.all_reduce(packed)
    results["metrics"] = finalize_metric_sums(unpack_metric_sums(packed, names))
    return results


@pytest.mark.dist
def test_dp_ranks_reproduce_full_batch_gradient():
    torch.set_num_threads(1)
    results = run_distributed(dp_rank, 2, timeout=180)
    for mode in MODES:
        norms = compute_loss_normalizers(_batch()[0], norm_length=T)
        want, records = _local_grad(range(B), mode, norms, 1.0, micro_batch_size=B, pad_to=B)
        want_metrics = reduce_metrics(records)
        check(mode, results, want, want_metrics)


def check(mode, results, want, want_metrics):
    for res in (r[mode] for r in results):
        torch.testing.assert_close(res["sum"], want, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(res["avg"], want, rtol=1e-12, atol=1e-14)
        for name, value in want_metrics.items():
            assert res["metrics"][name] == pytest.approx(value, rel=1e-12, abs=1e-14), name
