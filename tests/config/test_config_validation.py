"""Configs compose through Hydra, and every validation rule names the key before launch."""
import pytest

from mindspeed_rl.config import ConfigError, check_resources, load_config


def _fails(overrides, key, name="grpo_qwen25_32b"):
    with pytest.raises(ConfigError) as info:
        load_config(name, overrides)
    assert key in info.value.keys, f"expected {key} in {info.value.keys}\n{info.value}"
    return str(info.value)


def test_shipped_configs_compose_and_validate():
    big = load_config("grpo_qwen25_32b")
    assert big.model.hidden_size == 5120 and big.model.num_layers == 64 and big.model.num_query_groups == 8
    assert (big.actor_config.tensor_model_parallel_size, big.actor_config.pipeline_model_parallel_size) in [(8, 2), (4, 4)]
    assert big.rl_config.actor_resource.num_devices == 16
    assert big.generate_config.infer_tensor_parallel_size == 4 and big.rollout_data_parallel_size == 4
    assert big.rl_config.n_samples_per_prompt == 16
    assert big.generate_config.sampling_config.max_tokens == 3072
    assert big.actor_config.lr == 1e-6 and big.rl_config.kl_coef == 0.001
    seven = load_config("grpo_qwen25_7b.yaml")
    assert seven.model.hidden_size == 3584 and seven.model.num_attention_heads == 28
    tiny = load_config("grpo_tiny_cpu")
    assert tiny.generate_config.backend == "hf" and tiny.model.hidden_size < 256


def test_overrides_and_model_group_switch():
    cfg = load_config("grpo_qwen25_32b", ["actor_config.lr=2e-6", "model=qwen25_7b",
                                          "actor_config.tensor_model_parallel_size=4", "ref_config.tensor_model_parallel_size=4",
                                          "generate_config.infer_tensor_parallel_size=2"])
    assert cfg.actor_config.lr == 2e-6 and cfg.model.hidden_size == 3584


def test_unknown_key_did_you_mean():
    msg = _fails(["actor_config.lr_decay_styel=cosine"], "actor_config.lr_decay_styel")
    assert "lr_decay_style" in msg


def test_unknown_key_in_yaml_did_you_mean(tmp_path):
    (tmp_path / "bad.yaml").write_text("rl_config:\n  n_sample_per_prompt: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config("bad", config_dir=tmp_path)
    assert "rl_config.n_sample_per_prompt" in info.value.keys and "n_samples_per_prompt" in str(info.value)


def test_wrong_type():
    _fails(["actor_config.lr=fast"], "actor_config.lr")
    _fails(["rl_config.n_samples_per_prompt=2.5"], "rl_config.n_samples_per_prompt")
    _fails(["actor_config.params_dtype=fp8"], "actor_config.params_dtype")


def test_devices_equal_tp_pp_dp():
    _fails(["actor_config.tensor_model_parallel_size=8", "actor_config.pipeline_model_parallel_size=4"],
           "actor_config.tensor_model_parallel_size")
    _fails(["rl_config.colocate_actor_ref=false", "rl_config.reference_resource.num_devices=4"],
           "ref_config.tensor_model_parallel_size")


def test_global_batch_divisible_by_dp_times_micro_batch():
    _fails(["actor_config.tensor_model_parallel_size=4", "actor_config.pipeline_model_parallel_size=1",
            "ref_config.tensor_model_parallel_size=4", "ref_config.pipeline_model_parallel_size=1",
            "actor_config.micro_batch_size=3"], "megatron_training.global_batch_size")
    _fails(["actor_config.mini_batch_size=5"], "actor_config.mini_batch_size")


def test_n_samples_at_least_two():
    msg = _fails(["rl_config.n_samples_per_prompt=1"], "rl_config.n_samples_per_prompt")
    assert "2" in msg


def test_heads_and_query_groups_divisible_by_tp():
    # 40 heads, 8 groups: TP 16 divides neither; the devices rule holds (16 | 16).
    msg = _fails(["actor_config.tensor_model_parallel_size=16", "actor_config.pipeline_model_parallel_size=1"],
                 "actor_config.tensor_model_parallel_size")
    assert "num_attention_heads" in msg and "num_query_groups" in msg


def test_layers_divisible_by_pp_or_layer_list():
    # 64 layers: PP 16 with TP 1 keeps devices right, layers OK; make layers wrong via the 7B (28 layers) and PP 8.
    _fails(["model=qwen25_7b", "actor_config.tensor_model_parallel_size=2", "actor_config.pipeline_model_parallel_size=8",
            "generate_config.infer_tensor_parallel_size=2", "ref_config.tensor_model_parallel_size=4"],
           "actor_config.pipeline_model_parallel_size")
    _fails(["actor_config.num_layer_list=[30,30]"], "actor_config.num_layer_list")
    cfg = load_config("grpo_qwen25_32b", ["actor_config.num_layer_list=[30,34]"])
    assert cfg.actor_config.num_layer_list == [30, 34]


def test_inference_tp_compatible_with_training_tp():
    _fails(["generate_config.infer_tensor_parallel_size=3"], "generate_config.infer_tensor_parallel_size")
    _fails(["generate_config.infer_tensor_parallel_size=16"], "generate_config.infer_tensor_parallel_size")


def test_lengths_within_max_position_embeddings():
    msg = _fails(["model.max_position_embeddings=2048"], "generate_config.sampling_config.max_tokens")
    assert "max_position_embeddings" in msg


def test_requested_devices_available():
    cfg = load_config("grpo_qwen25_32b")
    check_resources(cfg, {"NPU": 16.0}, "NPU")
    with pytest.raises(ConfigError) as info:
        check_resources(cfg, {"NPU": 8.0}, "NPU")
    assert "rl_config.actor_resource.num_devices" in info.value.keys and "8" in str(info.value)


def test_missing_config_name_lists_available():
    with pytest.raises(ConfigError) as info:
        load_config("grpo_qwen25_99b")
    assert "grpo_qwen25_32b" in str(info.value)


def test_every_field_has_default_and_doc():

    from mindspeed_rl.config.schema import GRPOConfig
    from mindspeed_rl.config.structured import field_docs

    GRPOConfig()  # every field defaulted
    docs = field_docs(GRPOConfig)
    assert len(docs) > 60
    assert all(doc for _, _, doc in docs), [k for k, _, d in docs if not d]


def test_colocated_reference_shares_actor_layout():
    _fails(["ref_config.pipeline_model_parallel_size=1"], "ref_config.tensor_model_parallel_size")
    cfg = load_config("grpo_qwen25_32b", ["rl_config.colocate_actor_ref=false", "rl_config.reference_resource.num_devices=8",
                                          "ref_config.pipeline_model_parallel_size=1"])
    assert cfg.ref_data_parallel_size == 1


def test_missing_inputs_are_named_before_launch(tmp_path):
    from mindspeed_rl.config import check_inputs_exist

    cfg = load_config("grpo_tiny_cpu", [f"megatron_training.tokenizer_name_or_path={tmp_path / 'tok'}",
                                        f"megatron_training.data_path={tmp_path / 'data' / 'train'}",
                                        f"actor_config.load={tmp_path / 'mcore'}", "ref_config.load="])
    with pytest.raises(ConfigError) as info:
        check_inputs_exist(cfg)
    assert set(info.value.keys) == {"megatron_training.tokenizer_name_or_path", "megatron_training.data_path",
                                    "actor_config.load"}
    assert "cli/preprocess_data.py" in str(info.value)


def test_token_budget_must_hold_the_longest_row():
    # a budget below max_prompt_length + max_tokens would leave a row that fits no micro-batch
    cfg = load_config("grpo_qwen25_32b")
    longest = cfg.megatron_training.max_prompt_length + cfg.generate_config.sampling_config.max_tokens
    msg = _fails([f"actor_config.max_tokens_per_micro_batch={longest - 1}"], "actor_config.max_tokens_per_micro_batch")
    assert str(longest) in msg
    _fails([f"ref_config.log_prob_max_tokens_per_micro_batch={longest // 2}"],
           "ref_config.log_prob_max_tokens_per_micro_batch")
    ok = load_config("grpo_qwen25_32b", [f"actor_config.max_tokens_per_micro_batch={2 * longest}",
                                         f"actor_config.log_prob_max_tokens_per_micro_batch={longest}"])
    assert ok.actor_config.max_tokens_per_micro_batch == 2 * longest
