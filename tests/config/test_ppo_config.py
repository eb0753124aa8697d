"""PPO with a critic: the shipped configs validate, the critic's keys reach its engine and loss
configs, and every PPO rule refuses a bad value naming the key."""
import subprocess
import sys
from pathlib import Path

import pytest

from mindspeed_rl.config import ConfigError, check_resources, load_config
from mindspeed_rl.config import components

ROOT = Path(__file__).resolve().parents[2]


def _fails(overrides, key, name="ppo_tiny_cpu"):
    with pytest.raises(ConfigError) as info:
        load_config(name, overrides)
    assert key in info.value.keys, f"expected {key} in {info.value.keys}\n{info.value}"
    return str(info.value)


def test_shipped_ppo_configs_validate():
    tiny = load_config("ppo_tiny_cpu")
    assert tiny.rl_config.advantage_estimator == "gae" and tiny.critic_config is not None
    # the README's tiny settings: actor lr 3e-4, critic lr 2e-3, 4 critic steps an iteration, 2 warm-up iterations
    assert (tiny.actor_config.lr, tiny.critic_config.lr, tiny.critic_config.mini_batch_size,
            tiny.rl_config.critic_warmup) == (3e-4, 2e-3, 8, 2)
    orz = load_config("ppo_orz_qwen25_7b")
    rl, a, c = orz.rl_config, orz.actor_config, orz.critic_config
    assert (rl.gamma, rl.lam, rl.kl_coef, rl.use_kl_in_reward, rl.critic_warmup) == (1.0, 1.0, 0.0, False, 50)
    assert (a.lr, c.lr) == (1e-6, 5e-6)
    assert (orz.megatron_training.global_batch_size, rl.n_samples_per_prompt) == (128, 64)
    assert orz.generate_config.sampling_config.max_tokens == 8192
    assert orz.critic_data_parallel_size == 4


def test_critic_keys_reach_its_engine_and_loss():
    cfg = load_config("ppo_tiny_cpu", ["critic_config.lr=3e-4", "critic_config.micro_batch_size=8",
                                       "critic_config.cliprange_value=0.2", "megatron_training.train_iters=10"])
    engine = components.megatron_engine_config(cfg, "critic", total_steps=components.total_critic_steps(cfg))
    assert engine.output == "values" and not engine.forward_only
    assert (engine.lr, engine.micro_batch_size, engine.lr_decay_steps) == (3e-4, 8, 40)  # 4 mini-batches x 10
    assert components.value_loss_config(cfg).cliprange_value == 0.2
    assert components.megatron_engine_config(cfg, "actor").output == "log_probs"


def test_gae_needs_a_critic_and_a_critic_needs_gae():
    msg = _fails(["rl_config.advantage_estimator=gae"], "critic_config", name="grpo_tiny_cpu")
    assert "add a critic_config section" in msg
    msg = _fails(["rl_config.advantage_estimator=grpo"], "critic_config")
    assert "advantage_estimator=gae" in msg


@pytest.mark.parametrize("override,key", [
    ("rl_config.gamma=1.5", "rl_config.gamma"),
    ("rl_config.lam=-0.1", "rl_config.lam"),
    ("rl_config.critic_warmup=61", "rl_config.critic_warmup"),
    ("rl_config.critic_warmup=-1", "rl_config.critic_warmup"),
    ("critic_config.lr=0", "critic_config.lr"),
    ("critic_config.min_lr=1", "critic_config.min_lr"),
    ("critic_config.cliprange_value=0", "critic_config.cliprange_value"),
    ("critic_config.tensor_model_parallel_size=3", "critic_config.tensor_model_parallel_size"),
    ("critic_config.mini_batch_size=5", "critic_config.mini_batch_size"),
    ("critic_config.micro_batch_size=3", "critic_config.micro_batch_size"),
    ("critic_config.params_dtype=int8", "critic_config.params_dtype"),
    ("rl_config.critic_resource.num_devices=0", "rl_config.critic_resource.num_devices"),
])
def test_bad_ppo_values_name_the_key(override, key):
    _fails([override], key)


def test_critic_sequence_parallel_is_refused():
    msg = _fails(["critic_config.tensor_model_parallel_size=2", "critic_config.sequence_parallel=true",
                  "rl_config.critic_resource.num_devices=2"], "critic_config.sequence_parallel")
    assert "value head" in msg


def test_critic_devices_count_in_resources_and_placement():
    from mindspeed_rl.workers.placement import plan_worker_groups

    cfg = load_config("ppo_tiny_cpu", ["rl_config.critic_resource.num_devices=2"])
    groups = {r.group: r.num_ranks for r in plan_worker_groups(cfg, "CPU")}
    assert groups == {"actor_rollout": 1, "critic": 2}
    with pytest.raises(ConfigError) as info:
        check_resources(cfg, {"CPU": 2}, "CPU")
    assert "needs 3 CPU" in str(info.value)


def test_orz_dry_run_plans_the_critic():
    out = subprocess.run([sys.executable, "cli/train_grpo.py", "--config-name", "ppo_orz_qwen25_7b", "--dry-run"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "critic: 16 device(s) of its own" in out.stdout and "FITS" in out.stdout
    assert "critic (16 devices of its own, TP4 x PP1 x DP4)" in out.stdout
