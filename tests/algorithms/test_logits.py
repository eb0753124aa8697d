import math

import torch

from mindspeed_rl.algorithms import entropy_from_logits, logprobs_from_logits

torch.set_num_threads(1)


def test_entropy_matches_definition():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 11, generator=g) * 3
    ent = entropy_from_logits(logits)
    for idx in [(0, 0), (1, 2), (0, 1)]:
        row = logits[idx].double()
        z = sum(math.exp(v) for v in row.tolist())
        want = -sum((math.exp(v) / z) * (v - math.log(z)) for v in row.tolist())
        assert abs(ent[idx].item() - want) < 1e-5


def test_entropy_handles_minus_inf_and_bf16():
    logits = torch.tensor([[0.0, 0.0, float("-inf"), float("-inf")]], requires_grad=True)
    ent = entropy_from_logits(logits)
    assert abs(ent.item() - math.log(2)) < 1e-6
    ent.sum().backward()
    assert torch.isfinite(logits.grad).all()
    bf = torch.randn(4, 32).bfloat16()
    assert entropy_from_logits(bf).dtype == torch.float32


def test_logprobs_from_logits():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, 13, generator=g)
    labels = torch.randint(0, 13, (3, 5), generator=g)
    lp = logprobs_from_logits(logits, labels)
    for b in range(3):
        for t in range(5):
            row = logits[b, t].double()
            want = row[labels[b, t]] - torch.log(torch.exp(row).sum())
            assert abs(lp[b, t].item() - want.item()) < 1e-5
