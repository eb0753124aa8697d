"""engine.fast_paths and the engine's update bookkeeping against megatron's own path:

* megatron-core's local-spec linear layers through torch's F.linear at TP1 equal megatron's own
  autograd functions (output and every parameter gradient, fp32, 1e-6), and megatron's path still
  runs at TP2 and with a deferred-wgrad buffer;
* RoPE with cached cos/sin (and no empty cat) is bitwise megatron's (full and partial rotary,
  interleaved, bf16), THD takes megatron's function; with the gated-MLP path a GPTModel's logits
  and grads equal megatron's;
* an engine update (two steps and a log-prob pass) with all fast paths (RoPE, MLP, DP-only grad
  finalisation, train/eval switch on change, logits at the response positions only) equals megatron's
  functions at TP1, DP2, TP2, TP2 with sequence parallelism and PP2, and the DP-only finalisation is
  chosen only where it applies."""
import pytest

from mindspeed_rl.testing import run_distributed
from tests.engine import fast_path_ranks, linear_ranks


@pytest.mark.dist
@pytest.mark.parametrize("world", [1, 2])
def test_fast_linear_equals_megatron_linear(world):
    for rank, r in enumerate(run_distributed(linear_ranks.compare, world, timeout=240)):
        assert r["scale"] > 0.1 and r["grad_scale"] > 1e-3, (rank, r)
        assert r["out"] <= 1e-6 and r["grad"] <= 1e-6, (rank, r)
        assert r["megatron_calls"] == 0, (rank, r)  # megatron's functions never call F.linear
        # TP1: both linears of the pair took F.linear; TP2: neither (the TP collectives are needed)
        assert r["fast_calls"] == (2 if world == 1 else 0), (rank, r)
        # a wgrad-deferral buffer: megatron's path (one F.linear: the fast reference it is compared to)
        assert r["deferred_calls"] == (1 if world == 1 else 0) and r["deferred_out"] <= 1e-6, (rank, r)


@pytest.mark.dist
def test_fast_rope_and_mlp_equal_megatron():
    (r,) = run_distributed(fast_path_ranks.rope_compare, 1, timeout=240)
    for case in r["cases"]:
        # the same elementwise arithmetic: bitwise equal, contiguous like megatron's cat output
        assert case["scale"] > 0.1 and case["out"] == 0.0 and case["grad"] == 0.0 and case["contiguous"], case
    assert r["cached"] == len(r["cases"])  # one cos/sin entry per (freqs, dtype), reused on the repeat call
    assert r["thd"] == 0.0 and r["thd_cached"] == 0  # packed sequences: megatron's function, no cache entry
    assert r["mlp_fast_calls"] == 2  # the model's two layers took the gated-MLP fast path (megatron's: none)
    assert r["model_grad_scale"] > 1e-6 and r["model_out"] <= 1e-6 and r["model_grad"] <= 1e-6, r


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    import torch

    from mindspeed_rl.models.convert import hf_to_mcore
    from mindspeed_rl.models.random_checkpoint import write_random_hf_checkpoint
    from tests.engine import engine_ranks

    root = tmp_path_factory.mktemp("fast_paths")
    hf = str(root / "hf")
    write_random_hf_checkpoint(hf, engine_ranks.model_config(), torch.float32, seed=3)
    dirs = {}
    for tp, pp in [(1, 1), (2, 1), (1, 2)]:
        dirs[(tp, pp)] = str(root / f"mg_tp{tp}_pp{pp}")
        hf_to_mcore(hf, dirs[(tp, pp)], tp=tp, pp=pp, quiet=True)
    return hf, dirs


# (tp, pp, world, sequence parallel, DP-only finalisation expected)
ENGINE_LAYOUTS = {"tp1": (1, 1, 1, False, True), "dp2": (1, 1, 2, False, True), "tp2": (2, 1, 2, False, True),
                  "tp2sp": (2, 1, 2, True, False), "pp2": (1, 2, 2, False, False)}


@pytest.mark.dist
@pytest.mark.parametrize("layout", list(ENGINE_LAYOUTS))
def test_engine_update_fast_paths_equal_megatron(ckpts, layout):
    """Two updates and a log-prob pass with the engine's fast paths equal megatron's own path
    (finalize_model_grads, RoPE, MLP forward, model.train() on every call); the DP-only finalisation is chosen
    exactly where megatron's would only sync DP (not with sequence parallel or pipeline stages)."""
    hf, dirs = ckpts
    tp, pp, world, sp, dp_only = ENGINE_LAYOUTS[layout]
    for rank, r in enumerate(run_distributed(fast_path_ranks.engine_compare, world, hf, dirs[(tp, pp)], tp, pp, sp,
                                             timeout=420)):
        assert r["chosen_dp_only"] == dp_only, (rank, r)
        # the fast engine's MLPs and RoPE took the fast paths
        assert r["mlp_fast_calls"] > 0 and r["rope_cached"] > 0, (rank, r)
        # logits at the response rows only on the last stage (with sequence parallel too: the hook
        # gathers the sequence itself); the first of two pipeline stages has no output layer
        assert (r["response_logit_calls"] is None) == (not r["last_stage"]), (rank, r)
        assert not r["last_stage"] or r["response_logit_calls"] > 0, (rank, r)
        assert r["moved"] > 1e-5 and r["grad_norm"] > 0, (rank, r)  # the updates changed the weights
        assert r["params"] <= 1e-6 and r["log_probs"] <= 1e-6 and r["metrics"] <= 1e-6, (rank, r)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_swiglu_function_is_autograds_chunk_silu_mul(dtype):
    """The SwiGLU Function's output and input grad are bitwise autograd's ``silu(a) * b`` of the chunked
    fc1 output (the same kernels), for a contiguous and a transposed incoming grad."""
    import torch
    import torch.nn.functional as F

    from mindspeed_rl.engine.fast_paths import _SwiGLU

    g = torch.Generator().manual_seed(0)
    base = (torch.randn(5, 3, 2 * 24, generator=g) * 3).to(getattr(torch, dtype))
    for grad in (torch.randn(5, 3, 24, generator=g), torch.randn(3, 5, 24, generator=g).transpose(0, 1)):
        grad = grad.to(base.dtype)
        runs = []
        for fn in (lambda x: _SwiGLU.apply(x), lambda x: F.silu(x.chunk(2, -1)[0]) * x.chunk(2, -1)[1]):
            x = base.clone().requires_grad_(True)
            y = fn(x)
            y.backward(grad)
            runs.append((y.detach(), x.grad))
        assert runs[1][1].abs().max() > 0.1
        assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
