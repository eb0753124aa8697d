"""The chunked log-prob kernel (engine.vocab_parallel) equals a plain float32 log-softmax: values,
entropy and gradients, across chunk boundaries, with temperature and a padded vocab; bf16 logits
are read as they are (their float32 upcast is exact) and get a bf16 gradient."""
import pytest
import torch

from mindspeed_rl.algorithms import entropy_from_logits, logprobs_from_logits
from mindspeed_rl.engine.vocab_parallel import vocab_parallel_log_probs

torch.set_num_threads(1)


def _reference(logits, labels, true_vocab, temperature):
    """The old path: a full float32 copy, divided by the temperature, log-softmax over the true vocab."""
    z = logits.float()[..., :true_vocab] / temperature
    logp = torch.log_softmax(z, -1)
    return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk_elements", [1, 37, 1 << 22])  # one row per chunk, ragged chunks, one chunk
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_equals_full_float32_path(chunk_elements, temperature):
    g = torch.Generator().manual_seed(3)
    true_vocab, padded = 29, 32
    logits = torch.randn(3, 7, padded, generator=g) * 4
    logits[..., true_vocab:] = 0.0
    labels = torch.randint(0, true_vocab, (3, 7), generator=g)
    x = logits.clone().requires_grad_(True)
    lp, ent = vocab_parallel_log_probs(x, labels, true_vocab=true_vocab, with_entropy=True,
                                       temperature=temperature, chunk_elements=chunk_elements)
    y = logits.clone().requires_grad_(True)
    ref_lp, ref_ent = _reference(y, labels, true_vocab, temperature)
    assert (lp - ref_lp).abs().max() <= 1e-6 and (ent - ref_ent).abs().max() <= 1e-6
    w1, w2 = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    (lp * w1 + ent * w2).sum().backward()
    (ref_lp * w1 + ref_ent * w2).sum().backward()
    assert (x.grad - y.grad).abs().max() <= 1e-6
    assert torch.equal(x, logits)  # the kernel works on copies of its chunks, never on the logits


def test_bf16_logits_are_not_upcast_whole_and_match_their_float32_copy():
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(4, 9, 64, generator=g) * 3).bfloat16()
    labels = torch.randint(0, 64, (4, 9), generator=g)
    x = logits.clone().requires_grad_(True)
    lp, _ = vocab_parallel_log_probs(x, labels, chunk_elements=100)
    ref_lp, _ = _reference(logits, labels, 64, 1.0)  # bf16 -> fp32 is exact: the same float32 arithmetic
    assert lp.dtype == torch.float32 and (lp - ref_lp).abs().max() <= 1e-6
    lp.sum().backward()
    assert x.grad.dtype == torch.bfloat16


def _old_entropy(logits):
    """algorithms.logits.entropy_from_logits before chunking (a whole float32 copy)."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    finite = torch.where(probs > 0, logits, torch.zeros(()))
    return torch.logsumexp(logits, dim=-1) - (probs * finite).sum(dim=-1)


def test_plain_helpers_are_chunked_too(monkeypatch):
    import mindspeed_rl.algorithms.logits as L

    monkeypatch.setattr(L, "CHUNK_ELEMENTS", 50)  # several chunks of one or two rows
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 5, 41, generator=g) * 3
    labels = torch.randint(0, 41, (2, 5), generator=g)
    x, y = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ref_lp, _ = _reference(y, labels, 41, 1.0)
    lp, ent = logprobs_from_logits(x, labels), entropy_from_logits(x)
    old_ent = _old_entropy(y)
    assert (lp - ref_lp).abs().max() <= 1e-6 and (ent - old_ent).abs().max() <= 1e-6
    (lp.sum() + ent.sum()).backward()
    (ref_lp.sum() + old_ent.sum()).backward()
    # the entropy's gradient is written out (p (E[z] - z)) instead of autograd's chain: a few ulps apart
    assert (x.grad - y.grad).abs().max() <= 5e-6


@pytest.mark.dist
@pytest.mark.parametrize("true_vocab,temperature", [(13, 1.0), (20, 0.7)])  # 13: rank 1's shard is all padding
def test_tp2_shards_log_probs_entropy_and_gradient_equal_plain_log_softmax(true_vocab, temperature):
    from mindspeed_rl.testing import run_distributed
    from tests.engine import vocab_ranks

    results = run_distributed(vocab_ranks.shard_vs_torch, 2, true_vocab, 32, temperature, timeout=120)
    for rank, r in enumerate(results):
        assert r["lp"] <= 1e-5 and r["ent"] <= 1e-5 and r["grad"] <= 1e-6, (rank, r)
        assert r["pad_grad"] == 0.0, (rank, r)
    assert results[0]["grad_scale"] > 1e-2  # the comparison is not of zeros
    assert true_vocab <= 16 or results[1]["grad_scale"] > 1e-2


def test_labels_outside_the_true_vocab_are_refused():
    logits = torch.randn(2, 3, 16)
    with pytest.raises(ValueError, match="true vocabulary size 13"):
        vocab_parallel_log_probs(logits, torch.full((2, 3), 14), true_vocab=13)
