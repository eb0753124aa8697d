"""Metrics also under MindSpeed-RL's names, and the logger's keys (log_interval, wandb_project) reach it."""
import sys
import types

import pytest

from mindspeed_rl.config import load_config
from mindspeed_rl.trainer.metric_names import ThroughputBasis, mindspeed_rl_names
from mindspeed_rl.trainer.metrics_logger import MetricsLogger, read_jsonl

ITERATION = {"reward/mean": 0.5, "reward/max": 1.0, "reward/min": -1.0, "reward/acc/mean": 0.25,
             "pg_loss": -0.03, "kl_loss": 0.002, "entropy": 1.5, "grad_norm": 0.7, "lr": 1e-6,
             "response_length/mean": 100.0, "prompt_length/mean": 28.0,
             "timing/all": 8.0, "timing/update": 2.0, "timing/rollout": 4.0, "timing/reference": 0.5,
             "timing/reward": 0.25}


def test_mindspeed_rl_names_and_throughputs():
    basis = ThroughputBasis(global_batch_size=4, n_samples_per_prompt=8, world_size=2)
    out = mindspeed_rl_names(ITERATION, basis)
    assert out["grpo/score/mean"] == 0.5 and out["grpo/score/max"] == 1.0 and out["grpo/score/min"] == -1.0
    assert out["acc_rewards/mean"] == 0.25
    assert out["actor/pg_loss"] == pytest.approx(0.03)  # MindSpeed-RL logs |pg_loss|
    assert out["actor/kl_loss"] == 0.002 and out["actor/entropy"] == 1.5 and out["actor/grad_norm"] == 0.7
    assert out["timing/reference_model"] == 0.5 and out["timing/rule_reward"] == 0.25
    tokens_per_device = (100 + 28) * 4 * 8 / 2  # compute_tps: (response + prompt) x gbs x n / world
    assert out["e2e_tps"] == pytest.approx(tokens_per_device / 8.0)
    assert out["update_tps"] == pytest.approx(tokens_per_device / 2.0)
    assert out["vllm_tps"] == pytest.approx(tokens_per_device / 4.0)
    assert not set(out) & set(ITERATION)  # added beside ours, never replacing them


def test_throughput_world_is_the_actor_when_colocated():
    cfg = load_config("grpo_qwen25_32b")
    assert ThroughputBasis.from_config(cfg).world_size == 16
    split = load_config("grpo_qwen25_32b", ["rl_config.colocate_actor_ref=false", "rl_config.reference_resource.num_devices=8",
                                           "ref_config.tensor_model_parallel_size=8", "ref_config.pipeline_model_parallel_size=1"])
    assert ThroughputBasis.from_config(split).world_size == 24


def test_logger_from_config_log_interval_and_wandb(tmp_path, monkeypatch, capsys):
    runs = []
    fake = types.SimpleNamespace(init=lambda **kw: runs.append(kw) or types.SimpleNamespace(
        log=lambda row, step: runs.append(("log", step, row)), finish=lambda: runs.append("finish")))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = load_config("grpo_tiny_cpu", [f"megatron_training.log_dir={tmp_path}", "megatron_training.log_interval=3",
                                        "megatron_training.wandb_project=my-proj"])
    log = MetricsLogger.from_config(cfg)
    for it in range(1, 8):
        log.log(it, 7, dict(ITERATION))
    log.close()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("iter ")]
    assert [ln.split()[1] for ln in lines] == ["1/7", "3/7", "6/7", "7/7"]  # first, every 3rd, last
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == list(range(1, 8)) and rows[0]["grpo/score/mean"] == 0.5
    logged = [r for r in runs if isinstance(r, tuple)]
    assert runs[0]["project"] == "my-proj" and [r[1] for r in logged] == list(range(1, 8))
    assert "e2e_tps" in logged[0][2] and runs[-1] == "finish"


def test_logger_always_prints_a_validated_iteration(tmp_path, capsys):
    cfg = load_config("grpo_tiny_cpu", [f"megatron_training.log_dir={tmp_path}", "megatron_training.log_interval=5"])
    log = MetricsLogger.from_config(cfg)
    for it in range(1, 8):
        log.log(it, 7, {**ITERATION, **({"val/math500/pass@1": 0.25} if it == 4 else {})})
    log.close()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("iter ")]
    assert [ln.split()[1] for ln in lines] == ["1/7", "4/7", "5/7", "7/7"]
    assert "val/math500/pass@1 0.25" in lines[1]
