import pytest
import torch

import fake_vllm
from mindspeed_rl.engine.rollout import SamplingParams, build_rollout_engine
from mindspeed_rl.engine.rollout.hf_engine import HFRolloutEngine
from mindspeed_rl.engine.rollout.parallel_plan import plan_rollout_parallel
from mindspeed_rl.engine.rollout.vllm_engine import VLLMRolloutEngine, request_seed, to_vllm_sampling_params
from mindspeed_rl.testing import run_distributed
from mindspeed_rl.utils.imports import MissingBackendError
from rollout_testlib import argmax_decode, tiny_qwen2

PROMPTS = [[1, 2, 3], [4, 5, 6, 7], [8], [9, 10], [11, 12, 13]]


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.delitem(__import__("sys").modules, "vllm", raising=False)
    vllm = fake_vllm.install()
    yield vllm
    fake_vllm.uninstall()


def _engine(seed=0, **kw):
    llm = fake_vllm.FakeLLM(HFRolloutEngine(model=tiny_qwen2(seed=seed)))
    return VLLMRolloutEngine(llm=llm, **kw), llm


def test_missing_vllm_gives_install_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_vllm(name, *a, **k):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *a, **k)

    monkeypatch.delitem(__import__("sys").modules, "vllm", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(MissingBackendError, match="pip install"):
        build_rollout_engine("vllm", model_path="/nonexistent")


def test_llm_built_with_documented_kwargs(fake, monkeypatch):
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    eng = build_rollout_engine("vllm", model_path="/ckpt", tensor_parallel_size=2, max_model_len=1024,
                               load_format="dummy", seed=3)
    kw = eng._llm.kwargs
    assert kw["model"] == "/ckpt" and kw["tensor_parallel_size"] == 2 and kw["skip_tokenizer_init"] is True
    assert kw["distributed_executor_backend"] == "external_launcher" and kw["enable_sleep_mode"] is True
    assert kw["logprobs_mode"] == "processed_logprobs" and kw["load_format"] == "dummy" and kw["seed"] == 3
    import os
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


def test_sampling_params_translation(fake):
    sp = SamplingParams(n=4, temperature=0.9, top_p=0.95, top_k=-1, min_p=0.1, max_tokens=77,
                        stop_token_ids=[2, 5], seed=9)
    v = to_vllm_sampling_params(sp, fake.SamplingParams, request_seed(sp.seed, 3))
    assert (v.n, v.temperature, v.top_p, v.top_k, v.min_p, v.max_tokens) == (4, 0.9, 0.95, -1, 0.1, 77)
    assert v.stop_token_ids == [2, 5] and v.ignore_eos is True and v.logprobs == 0 and v.detokenize is False
    assert v.seed == request_seed(9, 3) != request_seed(9, 4)
    assert to_vllm_sampling_params(SamplingParams(top_k=0, logprobs=False), fake.SamplingParams, None).top_k == -1
    assert request_seed(None, 1) is None


def test_generate_matches_hf_backend(fake):
    eng, llm = _engine()
    hf = HFRolloutEngine(model=tiny_qwen2(seed=0))
    for sp in (SamplingParams(temperature=0.0, max_tokens=6, n=2),
               SamplingParams(n=3, max_tokens=5, seed=4, stop_token_ids=[7, 8, 9])):
        got = eng.generate(PROMPTS, sp)
        assert [o.prompt_index for g in got for o in g] == [i for i in range(len(PROMPTS)) for _ in range(sp.n)]
        assert [[o.sample_index for o in g] for g in got] == [list(range(sp.n))] * len(PROMPTS)
        for i, g in enumerate(got):
            for o in g:
                assert len(o.logprobs) == len(o.token_ids) and o.finish_reason in ("stop", "length")
                if sp.greedy:
                    assert o.token_ids == argmax_decode(hf.model, PROMPTS[i], 6)
    assert llm.seen_prompts[: len(PROMPTS)] == PROMPTS  # ids passed through untouched


def test_aborted_request_raises(fake):
    eng, llm = _engine()
    real = llm.generate

    def aborting(*a, **k):
        outs = real(*a, **k)
        outs[0].outputs[0].finish_reason = "abort"
        return outs

    llm.generate = aborting
    with pytest.raises(RuntimeError, match="abort"):
        eng.generate(PROMPTS, SamplingParams(max_tokens=2))


def test_update_weights_in_buckets_resets_prefix_cache(fake):
    eng, llm = _engine(seed=0, bucket_bytes=64 * 1024)
    target = tiny_qwen2(seed=1)
    sd = target.state_dict()
    n = eng.update_weights((k, v.clone()) for k, v in sd.items())
    assert n == len(sd)
    assert len(llm.load_calls) > 1 and sorted(x for c in llm.load_calls for x in c) == sorted(sd)
    for call in llm.load_calls:
        nbytes = sum(sd[x].numel() * sd[x].element_size() for x in call)
        assert nbytes <= 64 * 1024 or len(call) == 1
    assert llm.prefix_resets == 1
    for k, v in sd.items():
        assert torch.equal(llm.hf.state_dict()[k], v)
    got = eng.generate([PROMPTS[1]], SamplingParams(temperature=0.0, max_tokens=5))[0][0].token_ids
    assert got == argmax_decode(target, PROMPTS[1], 5)


def test_collective_rpc_path_when_engine_out_of_process(fake):
    eng, llm = _engine()
    del llm.llm_engine  # multiprocess engine: no direct model handle
    calls = []

    class Worker:
        model_runner = type("R", (), {"model": type("M", (), {"load_weights": lambda self, weights: calls.append(list(weights))})()})()

    llm.collective_rpc = lambda fn, args=(): [fn(Worker(), *args)]
    eng.update_weights([("model.norm.weight", torch.ones(32))])
    assert [n for n, _ in calls[0]] == ["model.norm.weight"]


def test_sleep_levels_and_tagged_wake_up(fake):
    eng, llm = _engine(sleep_level=2)
    sp = SamplingParams(temperature=0.0, max_tokens=2)
    eng.sleep()
    assert llm.sleep_calls == [2] and eng.is_sleeping
    with pytest.raises(RuntimeError, match="asleep"):
        eng.generate(PROMPTS, sp)
    with pytest.raises(RuntimeError, match="wake_up"):
        eng.update_weights([("model.norm.weight", torch.ones(32))])
    eng.wake_up(tags=["weights"])
    eng.wake_up(tags=["kv_cache"])
    eng.wake_up()  # already awake: no second wake-up (it would map memory twice)
    assert llm.wake_calls == [["weights"], ["kv_cache"]]
    with pytest.raises(RuntimeError, match="level=2"):  # weights were discarded: no stale generation
        eng.generate(PROMPTS, sp)
    eng.update_weights(tiny_qwen2(seed=0).state_dict().items())
    eng.generate(PROMPTS, sp)
    with pytest.raises(ValueError, match="tags"):
        eng.wake_up(tags=["bogus"])
    eng.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        eng.generate(PROMPTS, sp)


def _dp_rank_fn(rank, world_size, infer_tp, sp_kwargs):
    import fake_vllm as fv

    fv.install()
    torch.manual_seed(100 + rank)  # different process RNGs: results must not depend on them
    plan = plan_rollout_parallel(world_size, train_tp=2, train_pp=2, infer_tp=infer_tp)
    llm = fv.FakeLLM(HFRolloutEngine(model=tiny_qwen2(seed=0)))
    eng = VLLMRolloutEngine(llm=llm, plan=plan, rank=rank)
    out = eng.generate(PROMPTS, SamplingParams(**sp_kwargs))
    return [[(o.prompt_index, o.sample_index, o.token_ids, o.finish_reason) for o in g] for g in out], llm.seen_prompts


@pytest.mark.dist
@pytest.mark.slow  # 4 spawned ranks each importing torch + transformers
def test_data_parallel_replicas_share_prompts_and_gather_in_order():
    sp_kwargs = dict(n=2, max_tokens=4, seed=21)
    results = run_distributed(_dp_rank_fn, 4, 2, sp_kwargs, timeout=240)
    single = VLLMRolloutEngine(llm=fake_vllm.FakeLLM(HFRolloutEngine(model=tiny_qwen2(seed=0))))
    fake_vllm.install()
    try:
        ref = single.generate(PROMPTS, SamplingParams(**sp_kwargs))
    finally:
        fake_vllm.uninstall()
    ref = [[(o.prompt_index, o.sample_index, o.token_ids, o.finish_reason) for o in g] for g in ref]
    # Replicas {0,1} and {2,3}: 5 prompts -> 3 + 2, TP peers see the same share.
    seen = [r[1] for r in results]
    assert seen[0] == seen[1] == PROMPTS[:3] and seen[2] == seen[3] == PROMPTS[3:]
    for outputs, _ in results:
        assert outputs == ref  # every rank gets all results, in prompt order, layout-independent
