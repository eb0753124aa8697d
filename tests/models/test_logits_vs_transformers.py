"""Acceptance: a converted checkpoint loaded into megatron-core GPTModel on CPU gives the same
logits as transformers' Qwen2ForCausalLM on the original HF checkpoint, at TP1, TP2, PP2, TP2xPP2
(and an uneven PP split), for tiny random configs with GQA and QKV bias, tied and untied."""
import pytest
import torch

from mindspeed_rl.models.convert import hf_to_mcore
from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint
from mindspeed_rl.testing import run_distributed

from tests.models import mcore_ranks

pytest.importorskip("megatron.core")
transformers = pytest.importorskip("transformers")

LAYOUTS = [(1, 1, None), (2, 1, None), (1, 2, None), (2, 2, None), (1, 2, [1, 3])]
TIES = [False, True]


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """{tied: (dir, reference logits)} from transformers on the original HF checkpoints."""
    torch.set_num_threads(2)
    out = {}
    for tied in TIES:
        root = tmp_path_factory.mktemp("tied" if tied else "untied")
        cfg = tiny_qwen2_config(tie_word_embeddings=tied)
        write_random_hf_checkpoint(str(root / "hf"), cfg, torch.float32, max_shard_bytes=100_000, seed=3)
        model = transformers.Qwen2ForCausalLM.from_pretrained(str(root / "hf"), dtype=torch.float32).eval()
        with torch.no_grad():
            out[tied] = (root, model(mcore_ranks.tokens_for(cfg["vocab_size"])).logits)
    return out


@pytest.mark.dist
@pytest.mark.parametrize("tp,pp,num_layer_list", LAYOUTS, ids=["tp1", "tp2", "pp2", "tp2pp2", "pp2-uneven"])
def test_converted_logits_match_transformers(hf_models, tp, pp, num_layer_list):
    mg_dirs = []
    for tied in TIES:
        root, _ = hf_models[tied]
        mg = root / f"mg_tp{tp}_pp{pp}_{num_layer_list}"
        hf_to_mcore(str(root / "hf"), str(mg), tp=tp, pp=pp, num_layer_list=num_layer_list, quiet=True)
        mg_dirs.append(str(mg))
    results = run_distributed(mcore_ranks.converted_logits, tp * pp, mg_dirs, timeout=300)
    (per_model,) = [r for r in results if r[0] is not None]
    for tied, logits in zip(TIES, per_model):
        ref = hf_models[tied][1]
        assert logits.shape == ref.shape
        diff = (logits - ref).abs().max().item()
        assert diff <= 1e-5, f"max abs logit diff {diff:.3g} at tp={tp} pp={pp} tied={tied}"
        assert ref.abs().max() > 0.1  # the comparison is not between two near-zero outputs
