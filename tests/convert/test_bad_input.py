"""Bad input fails with a clear error before anything is written; interrupted runs leave nothing."""
import json
import os

import pytest
import torch

from mindspeed_rl.models import CheckpointError, ParallelismError, UnsupportedModelError
from mindspeed_rl.models import convert as conv
from mindspeed_rl.models.convert import hf_to_mcore, mcore_to_hf
from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint


@pytest.fixture
def hf(tmp_path):
    path = tmp_path / "hf"
    write_random_hf_checkpoint(str(path), tiny_qwen2_config(), torch.float32, max_shard_bytes=100_000)
    return path


def assert_nothing_written(tmp_path, target):
    assert not (tmp_path / target).exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], os.listdir(tmp_path)


def shards(hf):
    return sorted(p for p in os.listdir(hf) if p.endswith(".safetensors"))


def test_missing_shard(tmp_path, hf):
    os.remove(hf / shards(hf)[1])
    with pytest.raises(CheckpointError, match="missing.*" + shards(hf)[0][:6]):
        hf_to_mcore(str(hf), str(tmp_path / "mg"), quiet=True)
    assert_nothing_written(tmp_path, "mg")


def test_truncated_shard(tmp_path, hf):
    path = hf / shards(hf)[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated"):
        hf_to_mcore(str(hf), str(tmp_path / "mg"), quiet=True)
    assert_nothing_written(tmp_path, "mg")


def test_index_names_absent_tensor(tmp_path, hf):
    index = json.loads((hf / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.layers.0.self_attn.q_proj.weight"] = shards(hf)[-1]
    (hf / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="q_proj.weight"):
        hf_to_mcore(str(hf), str(tmp_path / "mg"), quiet=True)
    assert_nothing_written(tmp_path, "mg")


def test_tensor_absent_from_checkpoint(tmp_path):
    cfg = tiny_qwen2_config()
    write_random_hf_checkpoint(str(tmp_path / "hf"), cfg, torch.float32)
    cfg["num_hidden_layers"] = 5  # config promises a layer the weights do not have
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model.layers.4"):
        hf_to_mcore(str(tmp_path / "hf"), str(tmp_path / "mg"), quiet=True)
    assert_nothing_written(tmp_path, "mg")


def test_unsupported_architecture(tmp_path, hf):
    cfg = json.loads((hf / "config.json").read_text())
    cfg["architectures"] = ["MixtralForCausalLM"]
    (hf / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match="MixtralForCausalLM.*Qwen2ForCausalLM"):
        hf_to_mcore(str(hf), str(tmp_path / "mg"), quiet=True)
    assert_nothing_written(tmp_path, "mg")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(tp=3), "num_attention_heads=8"),
        (dict(tp=8), "num_key_value_heads.*=4"),
        (dict(pp=3), "pp=3 does not divide num_hidden_layers=4"),
        (dict(pp=2, num_layer_list=[1, 2]), "sum to num_hidden_layers=4"),
        (dict(pp=2, num_layer_list=[1, 1, 2]), "3 entries but pp=2"),
    ],
)
def test_bad_parallelism(tmp_path, hf, kwargs, match):
    with pytest.raises(ParallelismError, match=match):
        hf_to_mcore(str(hf), str(tmp_path / "mg"), quiet=True, **kwargs)
    assert_nothing_written(tmp_path, "mg")


def test_tp_not_dividing_ffn(tmp_path):
    write_random_hf_checkpoint(str(tmp_path / "hf"), tiny_qwen2_config(intermediate_size=90), torch.float32)
    with pytest.raises(ParallelismError, match="intermediate_size"):
        hf_to_mcore(str(tmp_path / "hf"), str(tmp_path / "mg"), tp=4, quiet=True)


def test_refuses_non_empty_target_unless_overwrite(tmp_path, hf):
    target = tmp_path / "mg"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="--overwrite"):
        hf_to_mcore(str(hf), str(target), quiet=True)
    assert (target / "keep.txt").exists()
    hf_to_mcore(str(hf), str(target), tp=2, overwrite=True, quiet=True)
    assert not (target / "keep.txt").exists() and (target / "latest_checkpointed_iteration.txt").exists()


def test_interrupted_conversion_leaves_nothing(tmp_path, hf, monkeypatch):
    real = conv.mc.StreamingRankFile.write
    calls = {"n": 0}

    def flaky(self, name, tensor):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, name, tensor)

    monkeypatch.setattr(conv.mc.StreamingRankFile, "write", flaky)
    with pytest.raises(KeyboardInterrupt):
        hf_to_mcore(str(hf), str(tmp_path / "mg"), tp=2, quiet=True)
    assert_nothing_written(tmp_path, "mg")


def test_mcore2hf_missing_rank_file(tmp_path, hf):
    mg = tmp_path / "mg"
    hf_to_mcore(str(hf), str(mg), tp=2, pp=2, quiet=True)
    os.remove(mg / "iter_0000001" / "mp_rank_01_001" / "model_optim_rng.pt")
    with pytest.raises(CheckpointError, match="mp_rank_01_001"):
        mcore_to_hf(str(mg), str(tmp_path / "back"), quiet=True)
    assert not (tmp_path / "back").exists()


def test_mcore2hf_not_a_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="convert_meta.json"):
        mcore_to_hf(str(tmp_path / "empty"), str(tmp_path / "back"), quiet=True)


def test_cli_reports_error_and_exit_code(tmp_path, hf, capsys):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "convert"))
    import convert_ckpt

    rc = convert_ckpt.main(["hf2mcore", "--load-dir", str(hf), "--save-dir", str(tmp_path / "mg"), "--tp", "3"])
    assert rc == 2 and "tp=3 does not divide" in capsys.readouterr().err
