import itertools

import pytest

from mindspeed_rl.data import PromptSampler


def batches(sampler, k=None):
    return [b for b in itertools.islice(iter(sampler), k)]


def test_same_seed_same_order_and_epochs_differ():
    a = batches(PromptSampler(50, 8, seed=3, num_epochs=2))
    b = batches(PromptSampler(50, 8, seed=3, num_epochs=2))
    c = batches(PromptSampler(50, 8, seed=4, num_epochs=2))
    assert a == b and a != c
    assert len(a) == 2 * 6  # 50 // 8 full batches per epoch (drop_last)
    epoch0 = sum(a[:6], [])
    assert len(set(epoch0)) == 48 and epoch0 != sum(a[6:], [])


@pytest.mark.parametrize("dp_size", [1, 2])
def test_resume_gives_the_same_remaining_batches(dp_size):
    for rank in range(dp_size):
        kw = dict(dataset_size=37, global_batch_size=4, seed=7, num_epochs=3, dp_rank=rank, dp_size=dp_size)
        full = batches(PromptSampler(**kw))
        for k in (0, 1, 5, 9, 17, len(full)):
            first = PromptSampler(**kw)
            head = batches(first, k)
            state = first.state_dict()
            resumed = PromptSampler(**kw)
            resumed.load_state_dict(state)
            assert head + batches(resumed) == full, (rank, k)
            assert len(resumed) == 0


def test_dp_ranks_partition_the_dp1_batches():
    one = batches(PromptSampler(40, 8, seed=1))
    ranks = [batches(PromptSampler(40, 8, seed=1, dp_rank=r, dp_size=2)) for r in range(2)]
    assert [r0 + r1 for r0, r1 in zip(*ranks)] == one


def test_state_from_other_settings_is_refused():
    s = PromptSampler(40, 8, seed=1)
    with pytest.raises(ValueError, match="seed: saved 2 vs now 1"):
        s.load_state_dict({**s.state_dict(), "seed": 2})
    with pytest.raises(ValueError, match="multiple of dp_size"):
        PromptSampler(40, 6, dp_size=4)
