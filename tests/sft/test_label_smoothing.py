"""Label smoothing in the vocab-parallel kernel (the mean log-prob over the true vocab, one more
per-row reduction) equals plain torch ``F.cross_entropy(label_smoothing=eps)``: values and
gradients, with a padded vocab and several chunks, at TP1 and on two vocab shards (TP2)."""
import pytest
import torch
import torch.nn.functional as F

from mindspeed_rl.engine.vocab_parallel import vocab_parallel_log_prob_stats
from mindspeed_rl.utils.rank_processes import run_distributed

torch.set_num_threads(1)
TRUE_VOCAB, PADDED = 29, 32  # Megatron's zero-logit padding columns must not count in the mean


def _inputs(seed=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 7, PADDED, generator=g) * 4
    logits[..., TRUE_VOCAB:] = 0.0
    labels = torch.randint(0, TRUE_VOCAB, (3, 7), generator=g)
    weights = torch.rand(3, 7, generator=g)
    return logits, labels, weights


def _torch_reference(logits, labels, weights, eps):
    """Per-token smoothed CE by torch over the true vocab; returns (weighted sum, grad wrt logits)."""
    y = logits.clone().requires_grad_(True)
    per_token = F.cross_entropy(y[..., :TRUE_VOCAB].reshape(-1, TRUE_VOCAB), labels.reshape(-1),
                                label_smoothing=eps, reduction="none").reshape(labels.shape)
    total = (per_token * weights).sum()
    total.backward()
    return total.detach(), y.grad


def _smoothed(lp, mean_lp, eps):
    return (1 - eps) * (-lp) + eps * (-mean_lp)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("chunk_elements", [37, 1 << 22])
def test_tp1_equals_torch_cross_entropy(eps, chunk_elements):
    logits, labels, weights = _inputs()
    x = logits.clone().requires_grad_(True)
    lp, _, mean_lp = vocab_parallel_log_prob_stats(x, labels, true_vocab=TRUE_VOCAB, with_mean_log_prob=True,
                                                   chunk_elements=chunk_elements)
    total = (_smoothed(lp, mean_lp, eps) * weights).sum()
    total.backward()
    ref_total, ref_grad = _torch_reference(logits, labels, weights, eps)
    assert abs(float(total.detach()) - float(ref_total)) <= 1e-5 * max(1.0, abs(float(ref_total)))
    assert (x.grad - ref_grad).abs().max() <= 1e-6
    assert x.grad[..., TRUE_VOCAB:].abs().max() == 0  # padded columns get no gradient


def test_mean_log_prob_with_entropy_and_temperature():
    """All three outputs together (the entropy branch reuses buffers in place), temperature on."""
    logits, labels, weights = _inputs(seed=4)
    x = logits.clone().requires_grad_(True)
    lp, ent, mean_lp = vocab_parallel_log_prob_stats(x, labels, true_vocab=TRUE_VOCAB, with_entropy=True,
                                                     with_mean_log_prob=True, temperature=0.7, chunk_elements=50)
    (lp.sum() + 0.5 * ent.sum() + 2.0 * mean_lp.sum()).backward()
    y = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(y[..., :TRUE_VOCAB] / 0.7, -1)
    ref = (logp.gather(-1, labels.unsqueeze(-1)).sum() + 0.5 * (-(logp.exp() * logp).sum(-1)).sum()
           + 2.0 * logp.mean(-1).sum())
    ref.backward()
    assert (mean_lp - logp.mean(-1)).abs().max() <= 1e-5
    assert (x.grad - y.grad).abs().max() <= 5e-6


def _tp2_rank(rank, world_size, eps):
    import torch.distributed as dist

    logits, labels, weights = _inputs()
    local = PADDED // world_size
    shard = logits[..., rank * local:(rank + 1) * local].clone().requires_grad_(True)
    lp, _, mean_lp = vocab_parallel_log_prob_stats(shard, labels, vocab_start=rank * local, true_vocab=TRUE_VOCAB,
                                                   group=dist.group.WORLD, with_mean_log_prob=True, chunk_elements=40)
    total = (_smoothed(lp, mean_lp, eps) * weights).sum()
    total.backward()
    return float(total), shard.grad


@pytest.mark.dist
@pytest.mark.parametrize("eps", [0.1])
def test_tp2_equals_torch_cross_entropy(eps):
    results = run_distributed(_tp2_rank, 2, eps, timeout=120)
    logits, labels, weights = _inputs()
    ref_total, ref_grad = _torch_reference(logits, labels, weights, eps)
    grad = torch.cat([g for _, g in results], dim=-1)
    for total, _ in results:  # identical on both shards
        assert abs(total - float(ref_total)) <= 1e-5 * max(1.0, abs(float(ref_total)))
    assert (grad - ref_grad).abs().max() <= 1e-6
