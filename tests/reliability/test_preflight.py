"""The driver refuses a mismatched tokenizer, a
damaged dataset and a resume that would not do what the user asked, before Ray or any worker starts
(under 5 s on the tiny config)."""
import json
import shutil
import time
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
from mindspeed_rl.config import ConfigError, load_config



class WorkersWouldStart(Exception):
    pass


@pytest.fixture
def no_workers(monkeypatch):
    """Starting Ray is where workers begin: reaching it means a check came too late."""
    from mindspeed_rl.trainer import cluster

    def refuse(cfg, address=None):
        raise WorkersWouldStart("the driver got past its checks and would start Ray and the workers")

    monkeypatch.setattr(cluster, "init_ray", refuse)


def config(world: Path, overrides=()):
    base = [
        f"megatron_training.tokenizer_name_or_path={world / 'hf'}",
        f"megatron_training.data_path={world / 'data' / 'train'}",
        f"megatron_training.log_dir={world / 'runs'}", "megatron_training.save=", "megatron_training.save_interval=0",
        "megatron_training.global_batch_size=4", "megatron_training.seq_length=256",
        "megatron_training.max_prompt_length=200", "megatron_training.train_iters=4",
        "rl_config.n_samples_per_prompt=4", "rl_config.test_freq=0", "rl_config.test_before_train=false",
        "rl_config.val_datasets=[]", "actor_config.micro_batch_size=4", "actor_config.mini_batch_size=2", "ref_config.micro_batch_size=4",
        "actor_config.load=", "ref_config.load=",
        "generate_config.sampling_config.max_tokens=12", "generate_config.max_model_len=256",
    ]
    return load_config("grpo_tiny_cpu", base + list(overrides))


def refused(cfg) -> tuple[ConfigError, float]:
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    t = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        GRPOTrainer(cfg)
    return info.value, time.perf_counter() - t


def test_the_tiny_world_passes_every_check(tiny_world, no_workers):
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    with pytest.raises(WorkersWouldStart):
        GRPOTrainer(config(tiny_world))


# ---- tokenizer, model vocabulary and dataset belong together -----------------------
def test_big_tokenizer_with_the_tiny_model_is_refused_naming_both(tiny_world, no_workers):
    qwen = str(FIXTURES / "qwen2_tokenizer")  # 151k tokens; the tiny model has ~400
    err, seconds = refused(config(tiny_world, [f"megatron_training.tokenizer_name_or_path={qwen}",
                                               f"model.hf_config_dir={tiny_world / 'hf'}"]))
    text = str(err)
    assert "megatron_training.tokenizer_name_or_path" in err.keys and "megatron_training.data_path" in err.keys
    assert "151646 tokens" in text and str(tiny_world / "hf" / "config.json") in text and "vocab_size" in text
    assert "train_meta.json" in text  # the dataset side, named
    assert seconds < 5, seconds


def test_dataset_made_with_another_tokenizer_of_the_same_size_is_refused(tiny_world, tmp_path, no_workers):
    """Same vocabulary size, same special tokens, different merges: only the fingerprint tells."""
    from mindspeed_rl.data import load_template
    from mindspeed_rl.data.preprocess import PreprocessConfig, preprocess
    from mindspeed_rl.demo.assets import train_tokenizer

    n = len(json.loads((tiny_world / "hf" / "tokenizer.json").read_text())["model"]["vocab"])
    template = load_template("qwen_r1")
    texts = [template.render(f"Compute {i} times {i}, then subtract one.") for i in range(60)]
    train_tokenizer(texts, tmp_path / "other_tok", vocab_size=n)
    other_n = len(json.loads((tmp_path / "other_tok" / "tokenizer.json").read_text())["model"]["vocab"])
    if other_n != n:
        pytest.skip(f"the second BPE has {other_n} tokens, not {n}")
    preprocess(PreprocessConfig(input=str(tiny_world / "train.jsonl"), handler="flat",
                                map_keys={"prompt": "problem", "response": "answer"},
                                tokenizer_name_or_path=str(tmp_path / "other_tok"),
                                output_prefix=str(tmp_path / "data" / "train"), max_prompt_length=0, progress=False),
               log=lambda *a: None)
    err, seconds = refused(config(tiny_world, [f"megatron_training.data_path={tmp_path / 'data' / 'train'}"]))
    assert err.keys == ["megatron_training.data_path"] and "fingerprint" in str(err), str(err)
    assert str(tmp_path / "other_tok") in str(err) and seconds < 5


def test_checkpoint_converted_from_another_vocabulary_is_refused(tiny_world, tmp_path, no_workers):
    ckpt = tmp_path / "mcore"
    ckpt.mkdir()
    (ckpt / "convert_meta.json").write_text(json.dumps({"tp": 1, "pp": 1, "hf_config": {"vocab_size": 151936}}))
    err, _ = refused(config(tiny_world, [f"actor_config.load={ckpt}"]))
    assert err.keys == ["actor_config.load"] and "vocab_size 151936" in str(err)


# ---- damaged dataset and config files, unwritable outputs ---------------------------
def _copy_dataset(world: Path, dest: Path) -> Path:
    dest.mkdir()
    for p in (world / "data").iterdir():
        shutil.copy(p, dest / p.name)
    return dest / "train"


def test_truncated_dataset_bin_is_refused_naming_the_file(tiny_world, tmp_path, no_workers):
    prefix = _copy_dataset(tiny_world, tmp_path / "data")
    binf = Path(f"{prefix}_prompt.bin")
    binf.write_bytes(binf.read_bytes()[:-40])
    err, seconds = refused(config(tiny_world, [f"megatron_training.data_path={prefix}"]))
    assert f"{binf} holds" in str(err) and "(truncated)" in str(err) and seconds < 5


def test_truncated_dataset_idx_is_refused_naming_the_file(tiny_world, tmp_path):
    from mindspeed_rl.data import PromptDataset
    from mindspeed_rl.data.prompt_dataset import DatasetFormatError

    prefix = _copy_dataset(tiny_world, tmp_path / "data")
    idx = Path(f"{prefix}_label.idx")
    idx.write_bytes(idx.read_bytes()[:-8])
    with pytest.raises(DatasetFormatError, match=f"{idx} holds"):
        PromptDataset(str(prefix))


def test_malformed_model_config_json_is_refused_naming_the_file(tiny_world, tmp_path, no_workers):
    hf = tmp_path / "hf"
    shutil.copytree(tiny_world / "hf", hf)
    (hf / "config.json").write_text('{"vocab_size": 400,\n "hidden_size": }\n')
    err, _ = refused(config(tiny_world, [f"model.hf_config_dir={hf}"]))
    assert err.keys == ["model.hf_config_dir"] and f"{hf / 'config.json'}:2:" in str(err)


def test_unwritable_save_and_log_dirs_are_refused_before_workers(tiny_world, tmp_path, no_workers):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    err, _ = refused(config(tiny_world, [f"megatron_training.save={blocker / 'ckpt'}",
                                         f"megatron_training.log_dir={blocker / 'runs'}"]))
    assert set(err.keys) == {"megatron_training.save", "megatron_training.log_dir"}


# ---- resume that says what it does ------------------------------------------------
def fake_run_checkpoint(save: Path, iteration: int, cfg, saved_config=True) -> Path:
    """The files a run checkpoint has (run_state.json, actor tracker, engine meta, one real torch
    shard per rank), without training."""
    import dataclasses

    from mindspeed_rl.trainer.grpo import config_hash

    it = save / f"iter_{iteration:07d}"
    engine = it / "actor" / f"iter_{iteration:07d}"
    engine.mkdir(parents=True)
    state = {"iteration": iteration, "sampler": {"consumed": iteration}, "config_hash": config_hash(cfg)}
    if saved_config:
        state["config"] = dataclasses.asdict(cfg)
    (it / "run_state.json").write_text(json.dumps(state))
    (it / "actor" / "latest_checkpointed_iteration.txt").write_text(str(iteration))
    (engine / "engine_meta.json").write_text(json.dumps({"tp": 1, "pp": 1, "dp": 1}))
    torch.save({"step": iteration, "model": {"w": torch.zeros(256)}}, engine / "rank_tp00_pp000_dp000.pt")
    (save / "latest_checkpointed_iteration.txt").write_text(str(iteration))
    return it


def test_resume_with_changed_training_keys_is_refused_naming_each(tiny_world, tmp_path, no_workers):
    save = tmp_path / "ckpt"
    fake_run_checkpoint(save, 2, config(tiny_world, [f"megatron_training.save={save}"]))
    err, seconds = refused(config(tiny_world, [f"megatron_training.save={save}", "actor_config.lr=5e-3",
                                               "rl_config.n_samples_per_prompt=8", "rl_config.kl_coef=0.01"]))
    assert set(err.keys) == {"actor_config.lr", "rl_config.n_samples_per_prompt", "rl_config.kl_coef"}
    assert "run_state.json: 0.001" in str(err) and "resume_override=true" in str(err) and seconds < 5


def test_resume_override_is_logged_and_allowed_changes_are_listed(tiny_world, tmp_path, no_workers, capsys):
    from mindspeed_rl.trainer.resume_check import describe, plan_resume

    save = tmp_path / "ckpt"
    fake_run_checkpoint(save, 2, config(tiny_world, [f"megatron_training.save={save}"]))
    new = config(tiny_world, [f"megatron_training.save={save}", "actor_config.lr=5e-3", "megatron_training.train_iters=9",
                              "megatron_training.save_interval=3", "megatron_training.resume_override=true"])
    plan = plan_resume(new)
    assert plan.iteration == 2 and set(plan.overridden) == {"actor_config.lr"}
    assert {"megatron_training.train_iters", "megatron_training.save_interval"} <= set(plan.allowed)
    text = describe(plan)
    assert "changed (allowed): megatron_training.train_iters: 4 -> 9" in text
    assert "WARNING changed under megatron_training.resume_override: actor_config.lr: 0.001 -> 0.005" in text
    assert "keeps the saved value" in text  # the restored scheduler wins for lr: said, not hidden
    # only allowed changes: no override needed
    plan = plan_resume(config(tiny_world, [f"megatron_training.save={save}", "megatron_training.train_iters=9"]))
    assert plan.overridden == {} and list(plan.allowed) == ["megatron_training.train_iters"]


def test_old_checkpoint_with_only_a_hash_is_compared_by_hash(tiny_world, tmp_path, no_workers):
    save = tmp_path / "ckpt"
    fake_run_checkpoint(save, 2, config(tiny_world, [f"megatron_training.save={save}"]), saved_config=False)
    err, _ = refused(config(tiny_world, [f"megatron_training.save={save}", "actor_config.lr=5e-3"]))
    assert "records only a config hash" in str(err)


def test_save_dir_past_train_iters_is_an_error(tiny_world, tmp_path, no_workers):
    save = tmp_path / "ckpt"
    fake_run_checkpoint(save, 60, config(tiny_world, [f"megatron_training.save={save}"]))
    err, seconds = refused(config(tiny_world, [f"megatron_training.save={save}", "megatron_training.train_iters=3"]))
    assert err.keys == ["megatron_training.train_iters"] and "already holds iteration 60" in str(err) and seconds < 5


@pytest.mark.parametrize("damage", ["truncated_shard", "missing_shard", "bad_run_state", "bad_engine_meta", "bad_tracker"])
def test_damaged_newest_checkpoint_is_named_and_fallback_is_offered(tiny_world, tmp_path, no_workers, damage, capsys):
    save = tmp_path / "ckpt"
    base = config(tiny_world, [f"megatron_training.save={save}"])
    fake_run_checkpoint(save, 2, base)
    newest = fake_run_checkpoint(save, 4, base)
    shard = newest / "actor" / "iter_0000004" / "rank_tp00_pp000_dp000.pt"
    if damage == "truncated_shard":
        shard.write_bytes(shard.read_bytes()[:-300])
        named = shard
    elif damage == "missing_shard":
        shard.unlink()
        named = shard
    elif damage == "bad_run_state":
        (newest / "run_state.json").write_text('{"iteration": 4, "sampler": ')
        named = newest / "run_state.json"
    elif damage == "bad_engine_meta":
        (newest / "actor" / "iter_0000004" / "engine_meta.json").write_bytes(b"\x00\x00")
        named = newest / "actor" / "iter_0000004" / "engine_meta.json"
    else:  # the tracker is what is damaged: iteration 4 itself is intact and is the fallback
        (save / "latest_checkpointed_iteration.txt").write_text("4x")
        named = save / "latest_checkpointed_iteration.txt"
    err, seconds = refused(config(tiny_world, [f"megatron_training.save={save}", "megatron_training.train_iters=6"]))
    fallback = 4 if damage == "bad_tracker" else 2
    assert str(named) in str(err) and f"resume_fallback=true to resume from iteration {fallback}" in str(err), str(err)
    assert seconds < 5
    if damage == "bad_tracker":
        return

    from mindspeed_rl.trainer.resume_check import plan_resume

    plan = plan_resume(config(tiny_world, [f"megatron_training.save={save}", "megatron_training.train_iters=6",
                                           "megatron_training.resume_fallback=true"]))
    assert plan.iteration == 2 and plan.path == save / "iter_0000002"
    assert "falling back to iteration 2" in capsys.readouterr().out


@pytest.mark.dist
def test_resume_check_reads_a_real_engine_checkpoint(tiny_world, tmp_path):
    """The layout the check expects is the one the engine writes: a real DP2 checkpoint passes,
    and truncating one of its shards is named."""
    pytest.importorskip("megatron.core")
    from mindspeed_rl.testing import run_distributed
    from mindspeed_rl.trainer.resume_check import checkpoint_problem

    from tests.reliability.engine_save_world import save_world

    save = tmp_path / "ckpt"
    it = fake_run_checkpoint(save, 5, config(tiny_world, [f"megatron_training.save={save}"]))
    shutil.rmtree(it / "actor")
    dp = run_distributed(save_world, 2, str(tiny_world / "hf"), str(it), timeout=400)
    assert dp == [2, 2]
    assert checkpoint_problem(save, 5) is None
    shard = it / "actor" / "iter_0000003" / "rank_tp00_pp000_dp001.pt"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert str(shard) in checkpoint_problem(save, 5)
