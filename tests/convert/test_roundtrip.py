"""Acceptance: HF -> Megatron -> HF is bit-identical for every parameter, through the CLI."""
import glob
import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch
from safetensors.torch import load_file

from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "tools", "convert", "convert_ckpt.py")



def cli(*args) -> int:
    sys.path.insert(0, os.path.join(ROOT, "tools", "convert"))
    import convert_ckpt

    return convert_ckpt.main([str(a) for a in args])


def load_hf(d) -> dict:
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        out.update(load_file(f))
    return out


def make_hf(root, dtype=torch.bfloat16, **cfg):
    path = os.path.join(root, "hf")
    write_random_hf_checkpoint(path, tiny_qwen2_config(**cfg), dtype, max_shard_bytes=40_000, seed=1)
    for name in ("tokenizer_config.json", "vocab.json", "merges.txt"):
        with open(os.path.join(path, name), "w") as f:
            f.write("{}" if name.endswith("json") else "#version: 0.2\n")
    return path


CASES = [
    dict(tp=2, pp=2, tie=False, nll=None, div=128),
    dict(tp=4, pp=1, tie=False, nll=None, div=1),  # vocab 250: padded to 252, TP does not divide it
    dict(tp=4, pp=1, tie=True, nll=None, div=128),
    dict(tp=2, pp=2, tie=True, nll=None, div=1),
    dict(tp=1, pp=3, tie=False, nll="1,2,3", div=128, layers=6),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"tp{c['tp']}pp{c['pp']}{'tied' if c['tie'] else ''}div{c['div']}")
def test_round_trip_bit_identical(tmp_path, case):
    cfg = dict(tie_word_embeddings=case["tie"])
    if "layers" in case:
        cfg["num_hidden_layers"] = case["layers"]
    hf = make_hf(str(tmp_path), **cfg)
    mg, back = tmp_path / "mg", tmp_path / "back"
    args = ["hf2mcore", "--load-dir", hf, "--save-dir", mg, "--tp", case["tp"], "--pp", case["pp"],
            "--make-vocab-size-divisible-by", case["div"], "--quiet"]
    if case["nll"]:
        args += ["--num-layer-list", case["nll"]]
    assert cli(*args) == 0
    assert cli("mcore2hf", "--load-dir", mg, "--save-dir", back, "--max-shard-size", "30KB", "--quiet") == 0

    src, out = load_hf(hf), load_hf(back)
    assert sorted(src) == sorted(out)
    for name in src:
        assert out[name].dtype == src[name].dtype, name
        assert torch.equal(out[name], src[name]), name
    # sharded output with a complete index, config and tokenizer files carried over
    index = json.load(open(back / "model.safetensors.index.json"))
    assert set(index["weight_map"]) == set(src)
    assert all((back / f).is_file() for f in set(index["weight_map"].values()))
    for name in ("config.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        assert (back / name).is_file(), name
    assert json.load(open(back / "config.json"))["tie_word_embeddings"] == case["tie"]


def test_megatron_layout_on_disk(tmp_path):
    """The rank files follow Megatron's legacy layout and hold the sharded, padded tensors."""
    hf = make_hf(str(tmp_path), dtype=torch.float32)
    mg = tmp_path / "mg"
    assert cli("hf2mcore", "--load-dir", hf, "--save-dir", mg, "--tp", 2, "--pp", 2,
               "--params-dtype", "bf16", "--quiet") == 0
    assert (mg / "latest_checkpointed_iteration.txt").read_text() == "1"
    src = load_hf(hf)
    files = sorted(glob.glob(str(mg / "iter_0000001" / "mp_rank_*" / "model_optim_rng.pt")))
    assert [os.path.basename(os.path.dirname(f)) for f in files] == [
        "mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001"]
    for f in files:
        assert zipfile.ZipFile(f).testzip() is None  # CRCs patched after streaming writes
    first = torch.load(files[0], weights_only=True)  # tp0 pp0
    last = torch.load(files[3], weights_only=True)  # tp1 pp1
    assert first["checkpoint_version"] == 3.0 and first["iteration"] == 1
    assert first["mindspeed_rl"]["layers"] == [0, 2] and last["mindspeed_rl"]["layers"] == [2, 4]
    sd0, sd3 = first["model"], last["model"]
    emb = sd0["embedding.word_embeddings.weight"]
    assert emb.dtype == torch.bfloat16 and emb.shape == (128, 64)  # 250 padded to 256, split in 2
    assert torch.equal(emb, src["model.embed_tokens.weight"][:128].bfloat16())
    out = sd3["output_layer.weight"]  # rows 128..255: 122 real + 6 zero padding
    assert torch.equal(out[:122], src["lm_head.weight"][128:].bfloat16()) and not out[122:].any()
    # layer 2 lives on stage 1 as local layer 0; row-parallel o_proj: TP rank 1 holds input columns 32..63
    o = src["model.layers.2.self_attn.o_proj.weight"]
    assert torch.equal(sd3["decoder.layers.0.self_attention.linear_proj.weight"], o[:, 32:].bfloat16())
    assert "decoder.layers.2.input_layernorm.weight" not in sd3
    # fused fc1 on TP rank 1 = [gate rows 48..95; up rows 48..95]
    fc1 = sd3["decoder.layers.1.mlp.linear_fc1.weight"]
    g, u = src["model.layers.3.mlp.gate_proj.weight"], src["model.layers.3.mlp.up_proj.weight"]
    assert torch.equal(fc1, torch.cat([g[48:], u[48:]]).bfloat16())
    meta = json.load(open(mg / "convert_meta.json"))
    assert meta["padded_vocab_size"] == 256 and meta["num_layer_list"] == [2, 2]
    assert (mg / "hf_config" / "config.json").is_file()


def test_cli_help_runs_without_backends():
    out = subprocess.run([sys.executable, CLI, "hf2mcore", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--num-layer-list" in out.stdout


def test_mcore2hf_with_external_hf_config_dir(tmp_path):
    """--hf-config-dir supplies config and tokenizer files when the checkpoint's copy is gone."""
    import shutil

    hf = make_hf(str(tmp_path), dtype=torch.float32, tie_word_embeddings=True)
    mg, back = tmp_path / "mg", tmp_path / "back"
    assert cli("hf2mcore", "--load-dir", hf, "--save-dir", mg, "--tp", 2, "--quiet") == 0
    shutil.rmtree(mg / "hf_config")
    assert cli("mcore2hf", "--load-dir", mg, "--save-dir", back, "--hf-config-dir", hf, "--dtype", "bf16",
               "--quiet") == 0
    src, out = load_hf(hf), load_hf(back)
    assert sorted(src) == sorted(out) and "lm_head.weight" not in out
    assert all(torch.equal(out[n], src[n].bfloat16()) for n in src)
    assert (back / "merges.txt").is_file() and json.load(open(back / "config.json"))["torch_dtype"] == "bfloat16"


def test_llama_round_trip(tmp_path):
    """A second architecture through the same converter: only its mapping file differs."""
    hf = tmp_path / "hf"
    cfg = tiny_qwen2_config(architectures=["LlamaForCausalLM"], model_type="llama")
    write_random_hf_checkpoint(str(hf), cfg, torch.bfloat16, seed=2)
    assert cli("hf2mcore", "--load-dir", hf, "--save-dir", tmp_path / "mg", "--tp", 2, "--pp", 2, "--quiet") == 0
    sd = torch.load(tmp_path / "mg" / "iter_0000001" / "mp_rank_00_000" / "model_optim_rng.pt", weights_only=True)
    assert not any(k.endswith("linear_qkv.bias") for k in sd["model"])
    assert cli("mcore2hf", "--load-dir", tmp_path / "mg", "--save-dir", tmp_path / "back", "--quiet") == 0
    src, out = load_hf(hf), load_hf(tmp_path / "back")
    assert sorted(src) == sorted(out) and all(torch.equal(src[n], out[n]) for n in src)
