"""The DAPO and countdown configs load and validate with the published settings, and the
new keys' rules name the key."""
import pytest

from mindspeed_rl.config import ConfigError, load_config


def _fails(overrides, key, name="dapo_qwen25_32b"):
    with pytest.raises(ConfigError) as info:
        load_config(name, overrides)
    assert key in info.value.keys, f"expected {key} in {info.value.keys}\n{info.value}"
    return str(info.value)


def test_dapo_config_has_the_published_settings():
    cfg = load_config("dapo_qwen25_32b")
    rl, s = cfg.rl_config, cfg.generate_config.sampling_config
    assert (rl.clip_ratio_low, rl.clip_ratio_high) == (0.2, 0.28)
    assert rl.loss_agg_mode == "token-mean" and rl.kl_coef == 0.0 and not rl.use_kl_in_reward
    assert rl.filter_groups_enable and rl.filter_groups_metric == "acc" and rl.max_num_gen_batches == 10
    assert rl.overlong_buffer_enable and rl.overlong_buffer_len == 4096 and rl.overlong_penalty_factor == 1.0
    assert s.max_tokens == 20480 and s.temperature == 1.0 and s.top_p == 1.0
    assert rl.n_samples_per_prompt == 16 and cfg.megatron_training.global_batch_size == 512
    assert cfg.megatron_training.global_batch_size // cfg.actor_config.mini_batch_size == 16  # updates per step
    assert cfg.actor_config.lr == 1e-6 and cfg.actor_config.weight_decay == 0.1
    assert cfg.megatron_training.seq_length >= cfg.megatron_training.max_prompt_length + s.max_tokens


def test_countdown_configs():
    tiny = load_config("grpo_countdown_tiny_cpu")
    assert tiny.rl_config.verifier_function == ["countdown", "countdown_acc"] and tiny.generate_config.backend == "hf"
    # the settings the README's 3-seed rise was measured with: 32 prompts x 8, one Adam step at 1e-3
    assert tiny.megatron_training.global_batch_size == 32 and tiny.actor_config.mini_batch_size == 32
    assert tiny.actor_config.lr == 1e-3 and tiny.rl_config.n_samples_per_prompt == 8
    assert tiny.rl_config.filter_groups_enable and tiny.rl_config.filter_groups_metric == "countdown_acc"
    big = load_config("grpo_countdown_qwen25_3b")
    assert big.actor_config.lr == 5e-7 and big.rl_config.kl_coef == 0.001 and big.rl_config.n_samples_per_prompt == 8
    assert big.model.hidden_size == 2048 and big.model.num_layers == 36 and big.model.tie_word_embeddings
    assert big.megatron_training.max_prompt_length == 256 and big.generate_config.sampling_config.max_tokens == 1024


def test_dapo_key_rules():
    msg = _fails(["rl_config.filter_groups_metric=format"], "rl_config.filter_groups_metric")
    assert "'score'" in msg and "acc" in msg
    _fails(["rl_config.overlong_buffer_len=30000"], "rl_config.overlong_buffer_len")
    _fails(["rl_config.overlong_buffer_len=0"], "rl_config.overlong_buffer_len")
    _fails(["rl_config.overlong_penalty_factor=-1"], "rl_config.overlong_penalty_factor")
    # off switches make the other keys irrelevant
    load_config("dapo_qwen25_32b", ["rl_config.filter_groups_enable=false", "rl_config.filter_groups_metric=format",
                                    "rl_config.overlong_buffer_enable=false", "rl_config.overlong_buffer_len=0"])
    load_config("dapo_qwen25_32b", ["rl_config.filter_groups_metric=score"])


def test_importable_reward_spec_passes_validation_and_a_wrong_one_does_not():
    cfg = load_config("grpo_tiny_cpu", ["rl_config.verifier_function=['tests.trainer.sparse_reward:length_multiple_of_8']",
                                        "rl_config.verifier_weight=[1.0]"])
    assert cfg.rl_config.verifier_function == ["tests.trainer.sparse_reward:length_multiple_of_8"]
    _fails(["rl_config.verifier_function=['tests.trainer.sparse_reward:nope']", "rl_config.verifier_weight=[1.0]"],
           "rl_config.verifier_function[0]", name="grpo_tiny_cpu")
