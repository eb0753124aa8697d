"""engine.sdpa_attention: the local spec's core attention through torch's fused SDPA equals
megatron-core's DotProductAttention (outputs and q/k/v gradients, fp32, 1e-6) with and without
GQA, at TP1 and TP2, takes the fused kernel only in the plain causal case, and is what the engine's
kernel resolution builds by default on CPU."""
import pytest

from mindspeed_rl.engine.kernels import KernelConfig, KernelError, resolve_kernels
from mindspeed_rl.testing import run_distributed
from tests.engine import attention_ranks


@pytest.mark.dist
@pytest.mark.parametrize("world", [1, 2])
def test_sdpa_equals_dot_product_attention(world):
    for rank, res in enumerate(run_distributed(attention_ranks.compare, world, timeout=240)):
        for case in ("gqa", "mha"):
            r = res[case]
            assert r["scale"] > 0.1, (rank, case, r)
            assert r["out"] <= 1e-6 and r["grad"] <= 1e-6, (rank, case, r)
            assert r["fused_calls"] == 1, (rank, case, r)  # the fused kernel ran (forward only: 1 call)
            # explicit mask: megatron's own path, same result, no fused call; the mask changed the output
            assert r["masked_calls"] == 0 and r["masked_out"] == 0.0 and r["mask_matters"] > 1e-3, (rank, case, r)
        assert res["dropout_train_plain"] is False and res["dropout_eval_plain"] is True


def test_kernel_resolution_picks_sdpa_on_the_local_spec():
    cpu = resolve_kernels(KernelConfig(), "cpu", te_available=False)
    assert cpu.core_attention == "sdpa" and cpu.transformer_kwargs["attention_backend"] == "local"
    assert resolve_kernels(KernelConfig(attention_backend="local"), "cpu", te_available=False).core_attention == "dot_product"
    assert resolve_kernels(KernelConfig(), "cuda", te_available=False).core_attention == "sdpa"
    assert resolve_kernels(KernelConfig(), "cuda", te_available=True).core_attention is None
    # Ascend: MindSpeed patches megatron's DotProductAttention; sdpa only when asked for
    assert resolve_kernels(KernelConfig(), "npu", te_available=False).core_attention == "dot_product"
    assert resolve_kernels(KernelConfig(attention_backend="sdpa"), "npu", te_available=False).core_attention == "sdpa"
    with pytest.raises(KernelError, match="^attention_backend: sdpa needs the local spec"):
        resolve_kernels(KernelConfig(attention_backend="sdpa"), "cuda", te_available=True)


def test_bridge_spec_carries_the_core_attention():
    from mindspeed_rl.engine.sdpa_attention import SDPAttention, core_attention_module
    from mindspeed_rl.models import get_bridge
    from mindspeed_rl.testing.tiny import SMALL, tiny_qwen2_config

    bridge = get_bridge(tiny_qwen2_config(**SMALL))
    spec = bridge.layer_spec(use_te=False, core_attention=core_attention_module("sdpa"))
    assert spec.submodules.self_attention.submodules.core_attention is SDPAttention
    plain = bridge.layer_spec(use_te=False, core_attention=core_attention_module("dot_product"))
    assert plain.submodules.self_attention.submodules.core_attention.__name__ == "DotProductAttention"
