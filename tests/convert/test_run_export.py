"""A GRPO run checkpoint exports to HF (any iteration, the layout it was trained
with, tokenizer and generation config) and every refusal names the path and the fix."""
import json
import os
import shutil

import pytest
import torch

from mindspeed_rl.models import CheckpointError
from mindspeed_rl.models.convert import mcore_to_hf
from tests.convert.run_ckpt_lib import add_run_iteration
from tests.convert.test_roundtrip import cli, load_hf, make_hf


@pytest.fixture
def hf(tmp_path):
    return make_hf(str(tmp_path), dtype=torch.float32)


@pytest.mark.parametrize("tp,pp,dp,te", [(1, 1, 1, False), (2, 2, 2, True), (4, 1, 1, False)])
def test_run_checkpoint_exports_bit_exact_at_every_iteration(tmp_path, hf, tp, pp, dp, te):
    save = tmp_path / "ckpt"
    for it, scale in ((10, 2.0), (20, 3.0)):
        add_run_iteration(hf, save, it, tp=tp, pp=pp, dp=dp, scale=scale, te_names=te)
    src = load_hf(hf)
    # default: the latest iteration (the tracker's)
    assert cli("mcore2hf", "--load-dir", save, "--save-dir", tmp_path / "latest", "--quiet") == 0
    # --iteration picks an earlier one; an iter_N directory works on its own
    assert cli("mcore2hf", "--load-dir", save, "--save-dir", tmp_path / "it10", "--iteration", 10, "--quiet") == 0
    assert cli("mcore2hf", "--load-dir", save / "iter_0000010", "--save-dir", tmp_path / "dir10", "--quiet") == 0
    for out_dir, scale in (("latest", 3.0), ("it10", 2.0), ("dir10", 2.0)):
        out = load_hf(tmp_path / out_dir)
        assert sorted(out) == sorted(src)
        for name in src:
            assert torch.equal(out[name], (src[name] * scale).to(src[name].dtype)), (out_dir, name)
        for f in ("config.json", "tokenizer_config.json", "vocab.json", "merges.txt", "generation_config.json"):
            assert (tmp_path / out_dir / f).is_file(), (out_dir, f)
    gen = json.load(open(tmp_path / "latest" / "generation_config.json"))
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert 7 in eos  # the run's recorded stop token


def test_refuses_missing_iteration_naming_what_exists(tmp_path, hf):
    save = tmp_path / "ckpt"
    add_run_iteration(hf, save, 3)
    with pytest.raises(CheckpointError, match=r"iter_0000005: no such iteration.*available: \[3\]"):
        mcore_to_hf(str(save), str(tmp_path / "out"), iteration=5, quiet=True)
    with pytest.raises(CheckpointError, match="holds iteration 3, not the requested 4"):
        mcore_to_hf(str(save / "iter_0000003"), str(tmp_path / "out"), iteration=4, quiet=True)
    assert not (tmp_path / "out").exists()


def test_refuses_run_checkpoint_without_tokenizer_unless_given(tmp_path, hf):
    save = tmp_path / "ckpt"
    add_run_iteration(hf, save, 3, side=False)
    with pytest.raises(CheckpointError, match=r"iter_0000003/actor/iter_0000006: .*no hf_config/.*--hf-config-dir"):
        mcore_to_hf(str(save), str(tmp_path / "out"), quiet=True)
    assert not (tmp_path / "out").exists()
    mcore_to_hf(str(save), str(tmp_path / "out"), hf_config_dir=str(hf), quiet=True)
    assert (tmp_path / "out" / "vocab.json").is_file()


def test_refuses_missing_rank_file_by_name(tmp_path, hf):
    save = tmp_path / "ckpt"
    it = add_run_iteration(hf, save, 3, tp=2, pp=2)
    os.remove(os.path.join(it, "actor", "iter_0000006", "rank_tp01_pp001_dp000.pt"))
    with pytest.raises(CheckpointError, match="rank_tp01_pp001_dp000.pt: missing rank file"):
        mcore_to_hf(str(save), str(tmp_path / "out"), quiet=True)


def test_refuses_rank_file_without_model(tmp_path, hf):
    save = tmp_path / "ckpt"
    it = add_run_iteration(hf, save, 3)
    path = os.path.join(it, "actor", "iter_0000006", "rank_tp00_pp000_dp000.pt")
    obj = torch.load(path, weights_only=False)
    del obj["model"]
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="rank_tp00_pp000_dp000.pt: no model weights"):
        mcore_to_hf(str(save), str(tmp_path / "out"), quiet=True)


def test_refuses_iteration_without_actor_or_meta(tmp_path, hf):
    save = tmp_path / "ckpt"
    it = add_run_iteration(hf, save, 3)
    meta = os.path.join(it, "actor", "iter_0000006", "engine_meta.json")
    with open(meta, "w") as f:
        f.write("{not json")
    with pytest.raises(CheckpointError, match="engine_meta.json: not valid JSON"):
        mcore_to_hf(str(save), str(tmp_path / "out"), quiet=True)
    shutil.rmtree(os.path.join(it, "actor"))
    with pytest.raises(CheckpointError, match=r"iter_0000003/actor/latest_checkpointed_iteration.txt: missing"):
        mcore_to_hf(str(save), str(tmp_path / "out"), quiet=True)


def test_refuses_a_tracker_naming_an_unfinished_iteration(tmp_path, hf):
    save = tmp_path / "ckpt"
    add_run_iteration(hf, save, 3)
    (save / "latest_checkpointed_iteration.txt").write_text("9")
    with pytest.raises(CheckpointError, match="iter_0000009: no such iteration.*available: \\[3\\]"):
        mcore_to_hf(str(save), str(tmp_path / "out"), quiet=True)


def test_refuses_a_directory_that_is_neither_format(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match=r"junk: neither .*convert_meta.json.*run_state.json.*notes.txt"):
        mcore_to_hf(str(tmp_path / "junk"), str(tmp_path / "out"), quiet=True)


def test_cli_error_exit_code_names_path(tmp_path, hf, capsys):
    save = tmp_path / "ckpt"
    add_run_iteration(hf, save, 3)
    rc = cli("mcore2hf", "--load-dir", save, "--save-dir", tmp_path / "out", "--iteration", 8)
    assert rc == 2 and "iter_0000008: no such iteration" in capsys.readouterr().err


def test_evaluate_model_source_reads_run_checkpoints(tmp_path, hf):
    from mindspeed_rl.evaluation.model_source import hf_model_dir, is_megatron_checkpoint

    save = tmp_path / "ckpt"
    add_run_iteration(hf, save, 3, scale=2.0)
    add_run_iteration(hf, save, 4, scale=3.0)
    assert is_megatron_checkpoint(str(save)) and is_megatron_checkpoint(str(save / "iter_0000003"))
    src = load_hf(hf)
    for path, it, scale in ((save, 4, 3.0), (save / "iter_0000003", 3, 2.0)):
        with hf_model_dir(str(path), log=lambda s: None) as m:
            assert m["source"] == "run" and m["iteration"] == it
            assert m["tokenizer"].endswith(f"iter_{it:07d}/hf_config")
            out = load_hf(m["hf_dir"])
            assert all(torch.equal(out[n], (src[n] * scale).to(src[n].dtype)) for n in src)
