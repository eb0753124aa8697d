"""A checkpoint converted by MindSpeed-LLM (Megatron's legacy ``iter_*/mp_rank_*`` layout, TE names,
an ``args`` namespace, no ``convert_meta.json``) loads when the HF config is given, and gives the same
log-probs as our own conversion of the same weights."""
import os
import shutil

import pytest
import torch

from mindspeed_rl.models import mcore_checkpoint as mc
from mindspeed_rl.models.convert import hf_to_mcore
from mindspeed_rl.models.errors import CheckpointError
from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint
from tests.convert.legacy_lib import as_mindspeed_llm


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("legacy")
    hf = str(root / "hf")
    write_random_hf_checkpoint(hf, tiny_qwen2_config(num_hidden_layers=4), torch.float32, seed=4)
    ours = str(root / "ours")
    hf_to_mcore(hf, ours, tp=2, pp=2, num_layer_list=[1, 3], quiet=True)
    return {"hf": hf, "ours": ours, "legacy": as_mindspeed_llm(ours, str(root / "legacy"))}


def test_layout_is_inferred_and_tensors_match(ckpts):
    with pytest.raises(CheckpointError, match="MindSpeed-LLM.*HF config is given"):
        mc.read_meta(ckpts["legacy"])
    ours, inferred = mc.read_meta(ckpts["ours"]), mc.read_meta(ckpts["legacy"], ckpts["hf"])
    for key in ("tp", "pp", "num_layer_list", "padded_vocab_size", "params_dtype", "architecture"):
        assert inferred[key] == ours[key], key
    assert inferred["num_layer_list"] == [1, 3]
    for tp_rank in range(2):
        for pp_rank in range(2):
            a, _ = mc.load_rank_state_dict(ckpts["ours"], tp_rank, pp_rank)
            b, _ = mc.load_rank_state_dict(ckpts["legacy"], tp_rank, pp_rank, hf_config=ckpts["hf"])
            assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_release_tracker(ckpts, tmp_path):
    legacy = shutil.copytree(ckpts["legacy"], tmp_path / "rel")
    os.rename(legacy / "iter_0000001", legacy / "release")
    (legacy / mc.TRACKER).write_text("release")
    assert mc.read_meta(str(legacy), ckpts["hf"])["iteration"] == "release"
    sd, _ = mc.load_rank_state_dict(str(legacy), 1, 1, hf_config=ckpts["hf"])
    assert "output_layer.weight" in sd


def _log_probs_world(rank, world_size, hf_dir, load):
    from mindspeed_rl.engine import MegatronEngine
    from tests.engine import engine_ranks

    engine = MegatronEngine(hf_dir, engine_ranks.engine_config(2, 2, forward_only=True, num_layer_list=[1, 3]), load=load)
    batch = engine_ranks.make_batch(250)
    out = engine.infer_batch({k: batch[k] for k in ("input_ids", "attention_mask", "response_mask")})
    return out["log_probs"] if engine.layout.returns_outputs else None


@pytest.mark.dist
@pytest.mark.slow
def test_engine_log_probs_equal_the_original(ckpts):
    from mindspeed_rl.testing import run_distributed

    ours = [r for r in run_distributed(_log_probs_world, 4, ckpts["hf"], ckpts["ours"]) if r is not None]
    legacy = [r for r in run_distributed(_log_probs_world, 4, ckpts["hf"], ckpts["legacy"]) if r is not None]
    assert len(ours) == len(legacy) == 1 and ours[0].abs().sum() > 0
    assert torch.equal(ours[0], legacy[0])
