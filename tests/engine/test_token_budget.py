"""Dynamic batch size bookkeeping (pure torch, no Megatron): token-budget micro-batches hold every
row exactly once within the budget, each trimmed to its own shape; DP shards keep the global
mini-batches and balance tokens. The engine's exactness under token budgets is checked in
test_engine_acceptance.py (update and log-probs at TP1/TP2/PP2/DP2)."""
import pytest
import torch

from mindspeed_rl.engine import batch as B


def _batch(lengths, prompt=2, seq=None):
    n = len(lengths)
    seq = seq or max(lengths) + 3
    resp = [max(1, length - prompt) for length in lengths]
    width = max(resp)
    ids = torch.zeros(n, seq, dtype=torch.long)
    att = torch.zeros(n, seq, dtype=torch.long)
    rmask = torch.zeros(n, width, dtype=torch.long)
    for i, (length, r) in enumerate(zip(lengths, resp)):
        ids[i, :length] = torch.arange(1, length + 1)
        att[i, :length] = 1
        rmask[i, :r] = 1
    return {"input_ids": ids, "attention_mask": att, "response_mask": rmask,
            "advantages": torch.randn(n, width) * rmask}


def test_groups_respect_budget_and_cover_rows_once():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 200, (97,), generator=g).tolist()
    groups = B.token_budget_groups(lengths, 400)
    assert sorted(i for grp in groups for i in grp) == list(range(97))
    for grp in groups:
        assert len(grp) * max(lengths[i] for i in grp) <= 400
    # longest first: no row could have joined the previous group
    assert all(lengths[grp[0]] == max(lengths[i] for i in grp) for grp in groups)


def test_row_longer_than_budget_stands_alone_and_bad_budget_refused():
    assert B.token_budget_groups([50, 10, 10], 30) == [[0], [1, 2]]
    with pytest.raises(ValueError, match="budget"):
        B.token_budget_groups([3], 0)


def test_split_trims_each_micro_batch_to_its_own_shape():
    batch = _batch([30, 5, 28, 6, 7, 29])
    micro, index = B.split_by_token_budget(batch, 64)
    assert sorted(torch.cat(index).tolist()) == list(range(6))
    for mb, rows in zip(micro, index):
        longest = int(batch["attention_mask"][rows].sum(-1).max())
        assert mb["input_ids"].shape == (len(rows), longest)
        width = int(batch["response_mask"][rows].sum(-1).max())
        assert mb["response_mask"].shape == (len(rows), width)
        assert torch.equal(mb["input_ids"], batch["input_ids"][rows, :longest])
        assert torch.equal(mb["advantages"], batch["advantages"][rows, :width])
    computed, real = B.padded_token_count(micro)
    fixed, _ = B.padded_token_count(B.split_micro_batches(B.trim_to_longest(batch), 2))
    assert real == int(batch["attention_mask"].sum()) and computed < fixed


def test_sequence_parallel_rounds_lengths_to_tp():
    batch = _batch([9, 5, 7])
    micro, _ = B.split_by_token_budget(batch, 100, seq_multiple=4)
    assert all(mb["input_ids"].shape[1] % 4 == 0 for mb in micro)
    assert B.trim_to_longest(batch, 4)["input_ids"].shape[1] == 12
    assert B.trim_to_longest(_batch([9], seq=10), 4)["attention_mask"].shape[1] == 12  # padded past the input


def test_empty_batch_gives_one_padding_micro_batch():
    micro, index = B.split_by_token_budget(B.select_rows(_batch([4]), torch.arange(0)), 16)
    assert len(micro) == 1 and micro[0]["attention_mask"].sum() == 0 and index[0].numel() == 0


@pytest.mark.parametrize("dp,mini", [(1, 1), (2, 1), (2, 2), (4, 2), (3, 3)])
def test_balanced_shards_keep_mini_batches_and_balance_tokens(dp, mini):
    g = torch.Generator().manual_seed(dp * 10 + mini)
    n = 48
    lengths = torch.randint(10, 1500, (n,), generator=g).tolist()
    shards = B.balanced_dp_shard_indices(lengths, dp, mini)
    plain = [B.dp_shard_indices(n, dp, d, mini) for d in range(dp)]
    assert sorted(torch.cat(shards).tolist()) == list(range(n))
    for d in range(dp):
        assert len(shards[d]) == len(plain[d])
    # global mini-batch k (chunk k of every rank's rows) is the same set of rows as before
    for k in range(mini):
        def chunk(parts):
            return sorted(i for p in parts for i in torch.tensor_split(p, mini)[k].tolist())
        assert chunk(shards) == chunk(plain)
    load = [sum(lengths[i] for i in s.tolist()) for s in shards]
    naive = [sum(lengths[i] for i in s.tolist()) for s in plain]
    assert max(load) - min(load) <= max(max(naive) - min(naive), max(lengths))
    if dp > 1:
        assert max(load) - min(load) <= max(lengths)


def test_engine_fixed_micro_batches_are_padded_to_their_own_longest_row():
    """Fixed-size micro-batches keep their rows in order and are each cut to their own longest row and
    response (rounded up to TP under sequence parallelism), not to the call's longest."""
    from types import SimpleNamespace

    from mindspeed_rl.engine.megatron_engine import MegatronEngine

    batch = _batch([30, 5, 6, 7, 28, 29, 4])
    for multiple, widths in ((1, [30, 7, 29, 4]), (4, [32, 8, 32, 4])):
        fake = SimpleNamespace(config=SimpleNamespace(micro_batch_size=2), _seq_multiple=lambda m=multiple: m)
        micro, index = MegatronEngine._micro_batches(fake, batch, 0, None)
        assert [r.tolist() for r in index] == [[0, 1], [2, 3], [4, 5], [6]]
        assert [mb["input_ids"].shape for mb in micro] == [(2, w) for w in widths]
        for mb, rows in zip(micro, index):
            n = len(rows)
            cut = min(mb["input_ids"].shape[1], batch["input_ids"].shape[1])
            assert torch.equal(mb["input_ids"][:n, :cut], batch["input_ids"][rows, :cut])
            width = int(batch["response_mask"][rows].sum(-1).max())
            assert torch.equal(mb["advantages"][:n], batch["advantages"][rows, :width])
        assert micro[-1]["attention_mask"][1].sum() == 0  # the missing row: fully masked
