"""Loss, optimiser and schedule rules are refused by load_config (before
Ray, model load or a rollout), naming the key the user wrote; a bare string for a list key is not
split into characters."""
import time

import pytest

from mindspeed_rl.config import ConfigError, load_config


def _problems(overrides):
    t = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config("grpo_tiny_cpu", overrides)
    assert time.perf_counter() - t < 5
    return {p.key: p for p in info.value.problems}, str(info.value)


@pytest.mark.parametrize("override,key", [
    ("rl_config.clip_ratio_c=0.5", "rl_config.clip_ratio_c"),
    ("rl_config.clip_ratio_c=1.0", "rl_config.clip_ratio_c"),
    ("rl_config.clip_ratio=-0.2", "rl_config.clip_ratio"),
    ("rl_config.clip_ratio=0", "rl_config.clip_ratio"),
    ("rl_config.clip_ratio=1.5", "rl_config.clip_ratio"),
    ("rl_config.clip_ratio_low=1.2", "rl_config.clip_ratio_low"),
    ("rl_config.clip_ratio_high=-0.1", "rl_config.clip_ratio_high"),
    ("rl_config.kl_coef=-1", "rl_config.kl_coef"),
    ("rl_config.entropy_coeff=-0.01", "rl_config.entropy_coeff"),
    ("rl_config.norm_adv_eps=0", "rl_config.norm_adv_eps"),
    ("rl_config.verifier_timeout=0", "rl_config.verifier_timeout"),
    ("actor_config.lr=-1e-3", "actor_config.lr"),
    ("actor_config.lr=0", "actor_config.lr"),
    ("actor_config.lr=nan", "actor_config.lr"),
    ("actor_config.min_lr=1e-2", "actor_config.min_lr"),  # above the tiny config's lr 1e-3
    ("actor_config.min_lr=-1e-6", "actor_config.min_lr"),
    ("actor_config.lr_warmup_fraction=1.0", "actor_config.lr_warmup_fraction"),
    ("actor_config.lr_warmup_fraction=-0.1", "actor_config.lr_warmup_fraction"),
    ("actor_config.weight_decay=-0.1", "actor_config.weight_decay"),
    ("actor_config.adam_beta1=1.0", "actor_config.adam_beta1"),
    ("actor_config.adam_beta2=-0.5", "actor_config.adam_beta2"),
    ("actor_config.adam_eps=0", "actor_config.adam_eps"),
    ("actor_config.clip_grad=-1", "actor_config.clip_grad"),
    ("actor_config.epochs=0", "actor_config.epochs"),
    ("megatron_training.train_iters=0", "megatron_training.train_iters"),
    ("megatron_training.save_interval=-5", "megatron_training.save_interval"),
    ("megatron_training.log_interval=0", "megatron_training.log_interval"),
    ("generate_config.sampling_config.max_tokens=0", "generate_config.sampling_config.max_tokens"),
    ("rl_config.test_freq=-1", "rl_config.test_freq"),
])
def test_bad_value_is_refused_naming_the_user_key(override, key):
    problems, text = _problems([override])
    assert key in problems, text
    # never the engine's internal names
    assert "actor_config.kl_loss_coef" not in text and "actor_config.clip_ratio" not in text


def test_all_broken_rules_are_reported_at_once():
    problems, _ = _problems(["rl_config.clip_ratio_c=0.5", "rl_config.clip_ratio=-0.2", "rl_config.kl_coef=-1",
                             "actor_config.lr=-1e-3"])
    assert {"rl_config.clip_ratio_c", "rl_config.clip_ratio", "rl_config.kl_coef", "actor_config.lr"} <= set(problems)


def test_warmup_that_rounds_to_zero_steps_is_refused():
    # tiny config: 60 iterations x 1 mini-batch x 1 epoch = 60 optimizer steps
    problems, _ = _problems(["actor_config.lr_warmup_fraction=0.001"])
    assert "0 warm-up steps" in problems["actor_config.lr_warmup_fraction"].rule
    assert load_config("grpo_tiny_cpu", ["actor_config.lr_warmup_fraction=0.05"]).actor_config.lr_warmup_fraction == 0.05


def test_valid_edges_are_accepted():
    cfg = load_config("grpo_tiny_cpu", ["rl_config.kl_coef=0", "rl_config.clip_ratio_c=3.0",
                                        "rl_config.clip_ratio_high=0.28", "actor_config.clip_grad=0"])
    assert cfg.rl_config.clip_ratio_c == 3.0


def test_verifier_function_without_brackets_is_not_split_into_characters():
    problems, _ = _problems(["rl_config.verifier_function=acc"])
    p = problems["rl_config.verifier_function"]
    assert p.rule == "expected a list" and "rl_config.verifier_function=[acc]" in p.fix
    assert not any(k.startswith("rl_config.verifier_function[") for k in problems)  # no 'a', 'c', 'c'
    cfg = load_config("grpo_tiny_cpu", ["rl_config.verifier_function=[acc]", "rl_config.verifier_weight=[1.0]"])
    assert cfg.rl_config.verifier_function == ["acc"]
