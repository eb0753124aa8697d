import pytest
import torch

from mindspeed_rl.engine.rollout.base import SamplingParams
from mindspeed_rl.engine.rollout.sampling import allowed_token_mask, sample_next_tokens
from tests.rollout.rollout_testlib import reference_allowed


@pytest.mark.parametrize(
    "kw",
    [dict(top_k=5), dict(top_p=0.6), dict(min_p=0.2), dict(top_k=10, top_p=0.8, min_p=0.05),
     dict(temperature=0.5, top_p=0.9), dict(top_k=1)],
)
def test_allowed_mask_matches_reference(kw):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 50, generator=g) * 3
    sp = SamplingParams(**kw)
    mask = allowed_token_mask(logits, sp)
    for row in range(logits.shape[0]):
        got = set(torch.nonzero(mask[row]).flatten().tolist())
        ref = reference_allowed(logits[row], sp.temperature, sp.top_k, sp.top_p, sp.min_p, slack=0.0)
        assert got == ref, (row, kw)
    if kw.get("top_k") == 1:
        assert mask.sum(-1).eq(1).all()


def test_disabled_filters_allow_everything():
    logits = torch.randn(3, 20)
    assert allowed_token_mask(logits, SamplingParams()).all()


def test_greedy_and_logprob_convention():
    logits = torch.randn(4, 30)
    tokens, lps = sample_next_tokens(logits, SamplingParams(temperature=0.0), None)
    assert torch.equal(tokens, logits.argmax(-1))
    torch.testing.assert_close(lps, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0])
    # Sampled with truncation: the log-prob is still over the FULL temperature-scaled vocabulary.
    sp = SamplingParams(temperature=0.7, top_k=3)
    tokens, lps = sample_next_tokens(logits, sp, torch.Generator().manual_seed(1))
    ref = torch.log_softmax(logits / 0.7, -1).gather(-1, tokens[:, None])[:, 0]
    torch.testing.assert_close(lps, ref)


@pytest.mark.parametrize(
    "kw", [dict(n=0), dict(temperature=-1), dict(top_p=0.0), dict(top_k=-2), dict(min_p=1.5), dict(max_tokens=0)]
)
def test_sampling_params_validation(kw):
    with pytest.raises(ValueError):
        SamplingParams(**kw)


def test_sampling_params_defaults():
    sp = SamplingParams(stop_token_ids=[3, 4])
    assert sp.stop_token_ids == (3, 4) and sp.n == 1 and sp.logprobs and sp.seed is None
