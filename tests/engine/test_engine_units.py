"""Single-process pieces of the engine: vocab-parallel log-softmax (values and gradients), the
batch format helpers, storage parking, and the engine layout."""
import pytest
import torch

from mindspeed_rl.engine import batch as engine_batch
from mindspeed_rl.engine.offload import StorageParking
from mindspeed_rl.engine.vocab_parallel import vocab_parallel_log_probs


def test_log_probs_and_entropy_match_torch_with_padded_vocab_and_gradients():
    torch.manual_seed(0)
    true_vocab, padded = 13, 16
    logits = torch.randn(3, 5, padded, dtype=torch.float64)
    logits[..., true_vocab:] = 0.0  # zero rows of a padded embedding: must not count
    labels = torch.randint(0, true_vocab, (3, 5))
    x = logits.clone().requires_grad_(True)
    lp, ent = vocab_parallel_log_probs(x, labels, true_vocab=true_vocab, with_entropy=True)
    y = logits[..., :true_vocab].clone().requires_grad_(True)
    ref_logp = torch.log_softmax(y, -1)
    ref_lp = ref_logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    ref_ent = -(ref_logp.exp() * ref_logp).sum(-1)
    assert torch.allclose(lp, ref_lp.float(), atol=1e-6) and torch.allclose(ent, ref_ent.float(), atol=1e-6)
    w1, w2 = torch.randn(3, 5), torch.randn(3, 5)
    (lp * w1 + ent * w2).sum().backward()
    (ref_lp * w1 + ref_ent * w2).sum().backward()
    assert torch.allclose(x.grad[..., :true_vocab], y.grad, atol=1e-6)
    assert (x.grad[..., true_vocab:] == 0).all()


def test_response_positions_and_micro_batches():
    att = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    resp = torch.tensor([[1, 1, 0], [1, 1, 1]])
    # row 0: prompt 2 -> logits 1, 2 predict tokens 2, 3; row 1: prompt 2 -> 1, 2, 3
    assert engine_batch.response_positions(att, resp).tolist() == [[1, 2, 3], [1, 2, 3]]
    batch = {"input_ids": torch.arange(10).reshape(2, 5), "attention_mask": att, "response_mask": resp}
    micro = engine_batch.split_micro_batches(batch, 3)
    assert len(micro) == 1 and micro[0]["input_ids"].shape == (3, 5)
    assert micro[0]["response_mask"][2].sum() == 0 and micro[0]["attention_mask"][2].sum() == 0
    empty = {k: v[:0] for k, v in batch.items()}
    assert len(engine_batch.split_micro_batches(empty, 2)) == 1  # a rank without rows still joins the schedule
    with pytest.raises(ValueError, match="response_mask"):
        engine_batch.check_batch(dict(batch, response_mask=torch.ones(2, 9, dtype=torch.long)))


def test_dp_shards_keep_global_mini_batches():
    shards = [engine_batch.dp_shard_indices(8, 2, r, num_mini_batches=2) for r in range(2)]
    assert shards[0].tolist() == [0, 1, 4, 5] and shards[1].tolist() == [2, 3, 6, 7]
    for k in range(2):  # local mini-batch k of every rank = global mini-batch k
        rows = torch.cat([s[engine_batch.mini_batch_indices(len(s), 2)[k]] for s in shards])
        assert sorted(rows.tolist()) == list(range(4 * k, 4 * k + 4))


def test_storage_parking_keeps_views_and_bits():
    flat = torch.randn(100)
    views = [flat[:40].view(4, 10), flat[40:]]
    before = [v.clone() for v in views]
    parking = StorageParking("x")
    parking.add(views)
    assert parking.offload() == 400 and flat.untyped_storage().nbytes() == 0
    parking.onload()
    assert all(torch.equal(a, b) for a, b in zip(views, before))
    views[0].add_(1.0)  # still views of the same storage
    assert torch.equal(flat[:40], before[0].reshape(-1) + 1.0)


def test_engine_layout_names_the_output_rank():
    from mindspeed_rl.engine.layout import EngineLayout

    grid = [EngineLayout(dp_rank=0, dp_size=1, tp_rank=t, tp_size=2, pp_rank=p, pp_size=2)
            for p in range(2) for t in range(2)]
    assert [lay.returns_outputs for lay in grid] == [False, False, True, False]  # TP 0 of the last stage
    assert [lay.is_first_stage for lay in grid] == [True, True, False, False]
    assert grid[2].to_dict() == {"dp_rank": 0, "dp_size": 1, "tp_rank": 0, "tp_size": 2, "pp_rank": 1, "pp_size": 2}
    with pytest.raises(ValueError, match="tp_rank=2"):
        EngineLayout(dp_rank=0, dp_size=1, tp_rank=2, tp_size=2, pp_rank=0, pp_size=1)
