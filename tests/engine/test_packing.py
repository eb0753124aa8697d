"""Packed-sequence bookkeeping (engine.packing) on CPU: cu_seqlens, position ids, unpack(pack(x)) == x,
response positions, and attention over the packed sequence with the block-diagonal causal mask (what
TE's THD kernel computes) equal to attention row by row, RoPE at the restarted positions included.
The THD kernel itself (TE on CUDA) is not run here."""
import math

import pytest
import torch

from mindspeed_rl.engine import batch as engine_batch
from mindspeed_rl.engine import packing as P

torch.set_num_threads(1)


def _rows(lengths, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1, 100, (n,), generator=g)
        mask[i, :n] = 1
    return ids, mask


def test_cu_seqlens_positions_and_tokens():
    ids, mask = _rows([3, 0, 5, 1], 6)
    p = P.pack(ids, mask)
    assert p.cu_seqlens.tolist() == [0, 3, 8, 9] and p.cu_seqlens.dtype == torch.int32
    assert p.max_seqlen == 5 and p.total == 9
    assert p.position_ids[0].tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 0]
    assert p.tokens[0].tolist() == ids[0, :3].tolist() + ids[2, :5].tolist() + ids[3, :1].tolist()
    assert p.offsets.tolist() == [0, 3, 3, 8]


def test_padding_segment_for_sequence_parallel_and_empty_batches():
    ids, mask = _rows([3, 4], 5)
    p = P.pack(ids, mask, multiple=4)
    assert p.total == 8 and p.cu_seqlens.tolist() == [0, 3, 7, 8]  # one padding token of its own segment
    assert p.position_ids[0].tolist()[-1] == 0
    empty = P.pack(*_rows([0, 0], 4))
    assert empty.total == 1 and empty.cu_seqlens.tolist() == [0, 1]


def test_unpack_of_pack_is_the_identity_on_real_tokens():
    ids, mask = _rows([4, 1, 0, 6], 7, seed=2)
    p = P.pack(ids, mask, multiple=2)
    assert torch.equal(P.unpack(p.tokens, p), ids * mask)
    feats = torch.randn(p.total, 3)
    rows = P.unpack(feats.unsqueeze(0), p)
    assert rows.shape == (4, 7, 3) and torch.equal(rows[mask.bool()], feats[: int(mask.sum())])
    assert (rows[~mask.bool()] == 0).all()
    with pytest.raises(ValueError, match="packed positions"):
        P.unpack(torch.zeros(p.total + 1), p)
    with pytest.raises(ValueError, match="right padding"):
        P.pack(ids, torch.tensor([[0, 1, 1, 0, 0, 0, 0]] * 4))


def test_packed_index_picks_the_response_positions():
    ids, mask = _rows([5, 3, 6], 6, seed=3)
    resp = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    pos = engine_batch.response_positions(mask, resp)
    p = P.pack(ids, mask)
    idx = P.packed_index(p, pos)
    feats = torch.randn(p.total, 2)
    rows = P.unpack(feats, p)
    picked = feats[idx]
    want = rows.gather(1, pos.unsqueeze(-1).expand(-1, -1, 2))
    real = resp.bool()
    assert torch.equal(picked[real], want[real])


def _rope(x, positions, base=10000.0):
    """Rotary embedding of x [..., t, d] at integer positions [t] (half-split, as Qwen2/megatron)."""
    d = x.shape[-1]
    inv = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = positions.double().unsqueeze(-1) * inv
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def _attention(q, k, v, allowed):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v


def test_block_diagonal_attention_over_the_pack_equals_row_by_row_attention():
    lengths, width, heads, dim = [5, 2, 0, 7, 3], 8, 2, 8
    ids, mask = _rows(lengths, width, seed=4)
    g = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(len(lengths), heads, width, dim, generator=g, dtype=torch.float64) for _ in range(3))
    # row by row: causal attention over each row's real tokens, RoPE at 0..len-1
    per_row = torch.zeros_like(q)
    for i, n in enumerate(lengths):
        if n:
            pos = torch.arange(n)
            causal = torch.ones(n, n, dtype=torch.bool).tril()
            per_row[i, :, :n] = _attention(_rope(q[i, :, :n], pos), _rope(k[i, :, :n], pos), v[i, :, :n], causal)
    # packed: one sequence, RoPE at the restarted position ids, the block-diagonal causal mask
    p = P.pack(ids, mask, multiple=4)
    keep = mask.bool()

    def packed(x):  # [B, H, S, D] -> [H, T, D], padding segment zeros
        flat = x.permute(0, 2, 1, 3)[keep]  # [real, H, D]
        flat = torch.cat([flat, flat.new_zeros(p.total - flat.shape[0], *flat.shape[1:])])
        return flat.permute(1, 0, 2)

    pos = p.position_ids[0]
    out = _attention(_rope(packed(q), pos), _rope(packed(k), pos), packed(v), P.block_causal_mask(p))
    rows = P.unpack(out.permute(1, 0, 2), p).permute(0, 2, 1, 3)  # [B, H, S, D]
    assert torch.allclose(rows, per_row, atol=1e-12)
    # without the block mask (plain causal over the pack) rows would see each other: the mask matters
    leaky = _attention(packed(q), packed(k), packed(v), torch.ones(p.total, p.total, dtype=torch.bool).tril())
    assert not torch.allclose(P.unpack(leaky.permute(1, 0, 2), p).permute(0, 2, 1, 3)[3], per_row[3])


def test_engine_log_probs_from_packed_logits_equal_the_padded_ones():
    # the engine's seam: response log-probs gathered from packed [1, T, V] logits (what the THD
    # forward returns) equal those from the padded [B, S, V] logits of the same rows
    from types import SimpleNamespace

    from mindspeed_rl.engine.megatron_engine import MegatronEngine

    ids, mask = _rows([5, 3, 0, 6], 6, seed=7)
    resp = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]])
    vocab = 101  # _rows draws ids in 1..99: every label in the vocabulary
    p = P.pack(ids, mask, multiple=2)
    packed_logits = torch.randn(1, p.total, vocab, generator=torch.Generator().manual_seed(1))
    padded_logits = P.unpack(packed_logits, p)
    fake = SimpleNamespace(config=SimpleNamespace(logit_temperature=0.8), tp_rank=0, tp_size=1,
                           bridge=SimpleNamespace(vocab_size=vocab), _ps=None)
    mb = {"input_ids": ids, "attention_mask": mask, "response_mask": resp}
    plain, plain_ent = MegatronEngine._token_log_probs(fake, padded_logits, mb, True)
    packed, packed_ent = MegatronEngine._token_log_probs(fake, packed_logits, dict(mb, packed_rows=p), True)
    real = resp.bool()
    assert torch.equal(plain[real], packed[real]) and torch.equal(plain_ent[real], packed_ent[real])
