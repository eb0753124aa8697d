"""Acceptance: a converted checkpoint loaded into megatron-core GPTModel on CPU gives the same
logits as transformers' Qwen2ForCausalLM on the original HF checkpoint, at TP1, TP2, PP2, TP2xPP2."""
import pytest
import torch

from mindspeed_rl.models.convert import hf_to_mcore
from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint
from mindspeed_rl.testing import run_distributed

import mcore_ranks

pytest.importorskip("megatron.core")
transformers = pytest.importorskip("transformers")

LAYOUTS = [(1, 1, None), (2, 1, None), (1, 2, None), (2, 2, None), (1, 2, [1, 3])]


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def hf_model(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("tied" if request.param else "untied")
    cfg = tiny_qwen2_config(tie_word_embeddings=request.param)
    write_random_hf_checkpoint(str(root / "hf"), cfg, torch.float32, max_shard_bytes=100_000, seed=3)
    torch.set_num_threads(2)
    model = transformers.Qwen2ForCausalLM.from_pretrained(str(root / "hf"), dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        ref = model(mcore_ranks.tokens_for(cfg["vocab_size"])).logits
    return root, ref


@pytest.mark.dist
@pytest.mark.parametrize("tp,pp,num_layer_list", LAYOUTS, ids=lambda x: str(x))
def test_converted_logits_match_transformers(hf_model, tp, pp, num_layer_list):
    root, ref = hf_model
    mg = root / f"mg_tp{tp}_pp{pp}_{num_layer_list}"
    hf_to_mcore(str(root / "hf"), str(mg), tp=tp, pp=pp, num_layer_list=num_layer_list, quiet=True)
    results = run_distributed(mcore_ranks.converted_logits, tp * pp, str(mg), timeout=300)
    (logits,) = [r for r in results if r is not None]
    assert logits.shape == ref.shape
    diff = (logits - ref).abs().max().item()
    assert diff <= 1e-5, f"max abs logit diff {diff:.3g} at tp={tp} pp={pp}"
