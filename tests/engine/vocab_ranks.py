"""Rank function for test_vocab_parallel_tp: each rank holds its vocab shard of the same logits."""
import torch


def shard_vs_torch(rank, world_size, true_vocab, padded, temperature):
    """Max |difference| to a plain float64 log_softmax over the true vocab: log-probs, entropy and this
    rank's shard of the gradient; and the largest gradient on padding columns."""
    import torch.distributed as dist

    from mindspeed_rl.engine.vocab_parallel import vocab_parallel_log_probs

    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 6, padded, generator=g, dtype=torch.float64).float() * 3
    logits[..., true_vocab:] = 0.0
    labels = torch.randint(0, true_vocab, (4, 6), generator=g)
    w1, w2 = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    width = padded // world_size
    start = rank * width
    x = logits[..., start:start + width].clone().requires_grad_(True)
    lp, ent = vocab_parallel_log_probs(x, labels, vocab_start=start, true_vocab=true_vocab, group=dist.group.WORLD,
                                       with_entropy=True, temperature=temperature, chunk_elements=7)
    (lp * w1 + ent * w2).sum().backward()
    y = logits[..., :true_vocab].double().requires_grad_(True)
    logp = torch.log_softmax(y / temperature, -1)
    ref_lp = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    ref_ent = -(logp.exp() * logp).sum(-1)
    (ref_lp * w1 + ref_ent * w2).sum().backward()
    ref_grad = torch.zeros(4, 6, padded, dtype=torch.float64)
    ref_grad[..., :true_vocab] = y.grad
    ref_shard = ref_grad[..., start:start + width]
    pad = x.grad[..., max(0, true_vocab - start):]
    return dict(lp=float((lp - ref_lp).abs().max()), ent=float((ent - ref_ent).abs().max()),
                grad=float((x.grad - ref_shard).abs().max()), grad_scale=float(ref_shard.abs().max()),
                pad_grad=float(pad.abs().max()) if pad.numel() else 0.0)
