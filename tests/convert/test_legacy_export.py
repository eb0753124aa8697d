"""A checkpoint converted by MindSpeed-LLM (legacy ``iter_*`` / ``release`` + ``mp_rank_*``, TE names,
an ``args`` Namespace, no ``convert_meta.json``) exports to HF with ``mcore2hf --hf-config-dir``: the
weights equal the original HF model's exactly; without the HF config it is refused, naming the path."""
import argparse
import glob
import os

import pytest
import torch
from safetensors.torch import load_file

from mindspeed_rl.models import mcore_checkpoint as mc
from mindspeed_rl.models.convert import hf_to_mcore
from mindspeed_rl.models.errors import CheckpointError
from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint
from mindspeed_rl.models.sources import open_megatron_checkpoint
from tests.convert.legacy_lib import as_mindspeed_llm
from tools.convert.convert_ckpt import main as convert_main


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("legacy_export")
    hf = str(root / "hf")
    write_random_hf_checkpoint(hf, tiny_qwen2_config(num_hidden_layers=4), torch.float32, seed=5)
    ours = str(root / "ours")
    hf_to_mcore(hf, ours, tp=2, pp=2, num_layer_list=[1, 3], quiet=True)
    return {"hf": hf, "legacy": as_mindspeed_llm(ours, str(root / "legacy")),
            "release": as_mindspeed_llm(ours, str(root / "release"), release=True)}


def hf_weights(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        out.update(load_file(f))
    return out


def assert_same_weights(a_dir, b_dir):
    a, b = hf_weights(a_dir), hf_weights(b_dir)
    assert sorted(a) == sorted(b) and a
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("which,flag", [("legacy", "--hf-config-dir"), ("release", "--hf-config")])
def test_mcore2hf_exports_the_original_weights(ckpts, tmp_path, capsys, which, flag):
    out = str(tmp_path / "out")
    assert convert_main(["mcore2hf", "--load-dir", ckpts[which], "--save-dir", out, flag, ckpts["hf"], "--quiet"]) == 0
    assert "legacy" in capsys.readouterr().out
    assert_same_weights(ckpts["hf"], out)
    assert os.path.isfile(os.path.join(out, "config.json"))


def test_source_infers_layout_and_release(ckpts):
    src = open_megatron_checkpoint(ckpts["legacy"], hf_config=ckpts["hf"], log=lambda *a: None)
    assert (src.kind, src.iteration, src.meta["tp"], src.meta["pp"], src.meta["num_layer_list"]) == \
        ("legacy", 1, 2, 2, [1, 3])
    assert src.side_dir == ckpts["hf"]
    rel = open_megatron_checkpoint(ckpts["release"], hf_config=ckpts["hf"], log=lambda *a: None)
    assert rel.iteration == mc.RELEASE and rel.weights_dir.endswith(os.sep + "release")
    assert rel.rank_path(1, 1).endswith(os.path.join("release", "mp_rank_01_001", mc.RANK_FILE))


def test_refused_without_hf_config(ckpts, capsys):
    for which in ("legacy", "release"):
        with pytest.raises(CheckpointError, match=f"{ckpts[which]}.*--hf-config-dir"):
            open_megatron_checkpoint(ckpts[which], log=lambda *a: None)
    assert convert_main(["mcore2hf", "--load-dir", ckpts["legacy"], "--save-dir", "/nonexistent/x", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert ckpts["legacy"] in err and "--hf-config-dir" in err


class NotATensor:
    pass


def test_rank_file_with_other_objects_is_refused_naming_it(ckpts, tmp_path):
    import shutil

    bad = shutil.copytree(ckpts["legacy"], tmp_path / "bad")
    path = str(bad / "iter_0000001" / "mp_rank_01_001" / mc.RANK_FILE)
    obj = mc.load_legacy_rank(path, mmap=False)
    assert isinstance(obj["args"], argparse.Namespace)
    obj["rng_state"] = NotATensor()
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=f"{path}: cannot be read as weights only"):
        convert_main_raise(str(bad), ckpts["hf"], str(tmp_path / "out"))


def convert_main_raise(load, hf, out):
    from mindspeed_rl.models.convert import mcore_to_hf

    mcore_to_hf(load, out, hf_config_dir=hf, quiet=True)
