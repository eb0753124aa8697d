"""The config room builds the engine's and the loss's own configs from the run config: every
component field comes from a run key (by name, or by the listed renames), bad values are refused
before launch naming the run key, and every registered algorithm is selectable by name."""
from dataclasses import fields

import pytest
import torch

from mindspeed_rl.config import ConfigError, load_config
from mindspeed_rl.config import components


def _problems(overrides, name="grpo_tiny_cpu"):
    with pytest.raises(ConfigError) as info:
        load_config(name, overrides)
    return info.value


def test_engine_config_from_run_config():
    run = load_config("grpo_tiny_cpu", ["actor_config.lr=3e-6", "actor_config.lr_warmup_fraction=0.1",
                                        "actor_config.lr_decay_style=cosine", "actor_config.params_dtype=bf16",
                                        "generate_config.sampling_config.temperature=0.7", "megatron_training.seed=7"])
    cfg = components.megatron_engine_config(run, "actor", total_steps=50)
    assert (cfg.lr, cfg.lr_warmup_steps, cfg.lr_decay_steps, cfg.seed) == (3e-6, 5, 50, 7)
    assert cfg.torch_dtype == torch.bfloat16 and not cfg.forward_only
    assert cfg.logit_temperature == 0.7
    assert cfg.make_vocab_size_divisible_by == run.model.make_vocab_size_divisible_by
    ref = components.megatron_engine_config(run, "ref")
    assert ref.forward_only and ref.tensor_model_parallel_size == run.ref_config.tensor_model_parallel_size
    with pytest.raises(ValueError, match="role"):
        components.megatron_engine_config(run, "value")


def test_every_engine_field_has_a_run_key():
    """No engine setting silently keeps its default: each is a worker key, derived, or engine-only."""
    from mindspeed_rl.config.schema import WorkerConfig
    from mindspeed_rl.engine import MegatronEngineConfig

    worker_keys = {f.name for f in fields(WorkerConfig)}
    for f in fields(MegatronEngineConfig):
        assert f.name in worker_keys or f.name in components.ENGINE_DERIVED or f.name in components.ENGINE_ONLY, f.name


def test_policy_loss_config_takes_every_loss_key_from_rl_config():
    run = load_config("grpo_tiny_cpu", [
        "rl_config.policy_loss=gspo", "rl_config.clip_ratio=0.1", "rl_config.clip_ratio_low=0.05",
        "rl_config.clip_ratio_high=0.28", "rl_config.clip_ratio_c=3.0", "rl_config.loss_agg_mode=seq-mean-token-sum-norm",
        "rl_config.kl_coef=0.02", "rl_config.kl_estimator=k2", "rl_config.entropy_coeff=0.01",
        "generate_config.sampling_config.max_tokens=24"])
    loss = components.policy_loss_config(run)
    assert (loss.policy_loss, loss.clip_ratio, loss.clip_ratio_low, loss.clip_ratio_high, loss.clip_ratio_c) == (
        "gspo", 0.1, 0.05, 0.28, 3.0)
    assert (loss.loss_agg_mode, loss.loss_norm_length) == ("seq-mean-token-sum-norm", 24)
    assert (loss.kl_loss_coef, loss.kl_loss_type, loss.entropy_coeff, loss.use_kl_loss) == (0.02, "k2", 0.01, True)
    off = load_config("grpo_tiny_cpu", ["rl_config.use_kl_in_reward=true"])
    assert not components.policy_loss_config(off).use_kl_loss


def test_a_loss_field_without_rl_key_fails_loudly():
    with pytest.raises(RuntimeError, match="no rl_config key"):
        components._loss_key("a_new_knob")


def test_bad_loss_value_is_refused_before_launch_naming_the_rl_key():
    err = _problems(["rl_config.clip_ratio_c=0.5"])
    assert "rl_config.clip_ratio_c" in err.keys


def test_loss_config_errors_map_to_run_keys(monkeypatch):
    """A rule only the loss config knows (here kl_loss_type) is reported under its rl_config name."""
    run = load_config("grpo_tiny_cpu")
    monkeypatch.setattr(run.rl_config, "kl_estimator", "k9")
    with pytest.raises(ConfigError) as info:
        components.policy_loss_config(run)
    assert info.value.keys == ["rl_config.kl_estimator"]


@pytest.mark.parametrize("key,registry", [("advantage_estimator", "ADVANTAGE_ESTIMATORS"),
                                          ("policy_loss", "POLICY_LOSSES"), ("kl_estimator", "KL_ESTIMATORS")])
def test_every_registered_name_is_selectable(key, registry):
    import mindspeed_rl.algorithms as algorithms

    names = getattr(algorithms, registry).names()
    assert len(names) >= 2
    for name in names:
        base = "ppo_tiny_cpu" if name == "gae" else "grpo_tiny_cpu"  # GAE needs a critic_config
        assert getattr(load_config(base, [f"rl_config.{key}={name}"]).rl_config, key) == name


@pytest.mark.parametrize("key,typo,suggestion", [("advantage_estimator", "rlo", "rloo"),
                                                 ("policy_loss", "gspoo", "gspo"), ("kl_estimator", "low_var", "low_var_kl")])
def test_unknown_algorithm_name_names_the_key_and_a_fix(key, typo, suggestion):
    err = _problems([f"rl_config.{key}={typo}"])
    assert err.keys == [f"rl_config.{key}"]
    assert f"did you mean {suggestion!r}" in str(err)


def test_engine_config_errors_name_the_worker_key(monkeypatch):
    run = load_config("grpo_tiny_cpu")
    monkeypatch.setattr(run.actor_config, "micro_batch_size", 0)
    with pytest.raises(ConfigError) as info:
        components.megatron_engine_config(run, "actor")
    assert info.value.keys == ["actor_config.micro_batch_size"]
