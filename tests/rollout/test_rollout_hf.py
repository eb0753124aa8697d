import pytest
import torch

from mindspeed_rl.engine.rollout import SamplingParams, build_rollout_engine
from mindspeed_rl.engine.rollout.hf_engine import HFRolloutEngine
from tests.rollout.rollout_testlib import argmax_decode, reference_allowed, teacher_forced_logits, tiny_qwen2

PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11], [12, 13, 14, 15]]


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model():
    return tiny_qwen2(seed=0)


@pytest.fixture(scope="module")
def engine(model):
    return HFRolloutEngine(model=model, max_batch_size=64)


def test_greedy_equals_argmax_decoding(engine, model):
    out = engine.generate(PROMPTS, SamplingParams(n=2, temperature=0.0, max_tokens=10))
    assert len(out) == len(PROMPTS)
    for i, p in enumerate(PROMPTS):
        ref = argmax_decode(model, p, 10)
        assert [o.sample_index for o in out[i]] == [0, 1]
        for o in out[i]:
            assert o.prompt_index == i
            assert o.token_ids == ref
            assert o.finish_reason == "length"


def test_chunking_does_not_change_results(model):
    small = HFRolloutEngine(model=model, max_batch_size=2)
    big = HFRolloutEngine(model=model, max_batch_size=64)
    sp = SamplingParams(temperature=0.0, max_tokens=6, n=2)
    assert [[o.token_ids for o in g] for g in small.generate(PROMPTS, sp)] == \
           [[o.token_ids for o in g] for g in big.generate(PROMPTS, sp)]


def test_seeded_sampling_repeats(engine):
    sp = SamplingParams(n=4, temperature=1.0, max_tokens=8, seed=123)
    a = [[o.token_ids for o in g] for g in engine.generate(PROMPTS, sp)]
    b = [[o.token_ids for o in g] for g in engine.generate(PROMPTS, sp)]
    c = [[o.token_ids for o in g] for g in engine.generate(PROMPTS, SamplingParams(n=4, max_tokens=8, seed=7))]
    assert a == b
    assert a != c
    # The n samples of one prompt are independent draws, not copies.
    assert len({tuple(t) for t in a[0]}) > 1
    # seed=None follows the process RNG.
    torch.manual_seed(5)
    d = [[o.token_ids for o in g] for g in engine.generate(PROMPTS, SamplingParams(n=2, max_tokens=8))]
    torch.manual_seed(5)
    e = [[o.token_ids for o in g] for g in engine.generate(PROMPTS, SamplingParams(n=2, max_tokens=8))]
    assert d == e


@pytest.mark.parametrize(
    "kw",
    [dict(top_k=3), dict(top_p=0.3), dict(min_p=0.3), dict(temperature=0.7, top_k=8, top_p=0.6, min_p=0.05)],
)
def test_filters_never_emit_disallowed_tokens(engine, model, kw):
    sp = SamplingParams(n=24, max_tokens=6, seed=11, **kw)
    out = engine.generate(PROMPTS[:2], sp)
    checked, distinct_at_first = 0, set()
    for i, group in enumerate(out):
        for o in group:
            logits = teacher_forced_logits(model, PROMPTS[i], o.token_ids)
            for step, tok in enumerate(o.token_ids):
                allowed = reference_allowed(logits[step], sp.temperature, sp.top_k, sp.top_p, sp.min_p)
                assert tok in allowed, (kw, i, step, tok, sorted(allowed))
                checked += 1
            distinct_at_first.add((i, o.token_ids[0]))
    assert checked == 2 * 24 * 6
    # Not degenerate: it really samples among several allowed tokens somewhere.
    assert len(distinct_at_first) > 2


def test_stop_token_and_length_finish_reasons(engine, model):
    free = argmax_decode(model, PROMPTS[1], 12)
    stop = free[3]
    first = free.index(stop)
    out = engine.generate([PROMPTS[1], PROMPTS[2]], SamplingParams(temperature=0.0, max_tokens=12, stop_token_ids=[stop]))
    o = out[0][0]
    assert o.finish_reason == "stop"
    assert o.token_ids == free[: first + 1]  # stop token included, nothing after it
    assert len(o.logprobs) == len(o.token_ids)
    other = out[1][0]  # per-sequence stopping: the other row keeps going
    ref_other = argmax_decode(model, PROMPTS[2], 12)
    if stop in ref_other:
        assert other.token_ids == ref_other[: ref_other.index(stop) + 1]
    else:
        assert other.token_ids == ref_other and other.finish_reason == "length"
    short = engine.generate([PROMPTS[0]], SamplingParams(temperature=0.0, max_tokens=3))[0][0]
    assert short.finish_reason == "length" and len(short.token_ids) == 3


@pytest.mark.parametrize("kw", [dict(temperature=0.0), dict(temperature=1.0), dict(temperature=0.7, top_k=5, top_p=0.8)])
def test_logprobs_equal_teacher_forced_recomputation(engine, model, kw):
    out = engine.generate(PROMPTS, SamplingParams(n=3, max_tokens=9, seed=3, **kw))
    temperature = kw["temperature"] or 1.0
    for i, group in enumerate(out):
        for o in group:
            logits = teacher_forced_logits(model, PROMPTS[i], o.token_ids)
            ref = torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(o.token_ids)[:, None])[:, 0]
            torch.testing.assert_close(torch.tensor(o.logprobs), ref, atol=1e-4, rtol=0)


def test_logprobs_off(engine):
    out = engine.generate([PROMPTS[0]], SamplingParams(max_tokens=3, logprobs=False, seed=0))
    assert out[0][0].logprobs is None


def test_update_weights_in_place_and_effective():
    eng = HFRolloutEngine(model=tiny_qwen2(seed=0))
    target = tiny_qwen2(seed=1)
    ptrs = {n: p.data_ptr() for n, p in eng.model.named_parameters()}
    loaded = eng.update_weights((n, t.clone()) for n, t in target.state_dict().items())
    assert loaded == len(target.state_dict())
    assert {n: p.data_ptr() for n, p in eng.model.named_parameters()} == ptrs
    for name, t in target.state_dict().items():
        assert torch.equal(eng.state_dict()[name], t), name
    sp = SamplingParams(temperature=0.0, max_tokens=6)
    assert eng.generate([PROMPTS[1]], sp)[0][0].token_ids == argmax_decode(target, PROMPTS[1], 6)
    with pytest.raises(KeyError, match="not_a_param"):
        eng.update_weights([("not_a_param", torch.zeros(1))])
    with pytest.raises(ValueError, match="shape"):
        eng.update_weights([("model.norm.weight", torch.zeros(3))])


def test_update_weights_tied_embeddings():
    eng = HFRolloutEngine(model=tiny_qwen2(seed=0, tie=True))
    target = tiny_qwen2(seed=2, tie=True)
    eng.update_weights([("model.embed_tokens.weight", target.model.embed_tokens.weight.detach())])
    assert torch.equal(eng.model.lm_head.weight, target.lm_head.weight)


def test_sleep_wake_and_shutdown():
    eng = build_rollout_engine("hf", model=tiny_qwen2(seed=0))
    sp = SamplingParams(temperature=0.0, max_tokens=4)
    before = eng.generate([PROMPTS[0]], sp)[0][0].token_ids
    eng.sleep()
    assert eng.is_sleeping
    with pytest.raises(RuntimeError, match="asleep"):
        eng.generate([PROMPTS[0]], sp)
    eng.wake_up()
    assert eng.generate([PROMPTS[0]], sp)[0][0].token_ids == before
    eng.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        eng.generate([PROMPTS[0]], sp)


def test_input_validation(engine):
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        engine.generate([[1], []], SamplingParams())
    with pytest.raises(ValueError, match="outside the vocabulary"):
        engine.generate([[1, 999]], SamplingParams())
    assert engine.generate([], SamplingParams()) == []
    with pytest.raises(ValueError, match="generate_config.backend"):
        build_rollout_engine("sglang")
