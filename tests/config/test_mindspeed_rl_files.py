"""A MindSpeed-RL user's run and model YAMLs load here as published (tests/fixtures/mindspeed_rl, source
in its README): every key is accepted, renamed (one note naming the new key) or ignored with a note
saying why; a typo is still refused with did-you-mean; the dry run prints the plan.

Proves: the 18 renames land on our keys with MindSpeed-RL's values; ``num_layer_list: 16,17,16,15`` is a
list of ints; the nested model YAML's Megatron names become the architecture; ``math_verify_reward``
validates; ``seq_length`` is reinterpreted; the colocated reference takes the actor's layout.
"""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mindspeed_rl.config import ConfigError, load_config
from mindspeed_rl.config.mindspeed_compat import OBSOLETE, RENAMES, translate
from mindspeed_rl.config.schema import GRPOConfig
from mindspeed_rl.config.structured import field_docs

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "mindspeed_rl" / "configs"
RUN_YAML = FIXTURES / "grpo_qwen25_32b_A3.yaml"
PUBLISHED_SHA256 = {  # MindSpeed-RL 05a90d77 (tests/fixtures/mindspeed_rl/README.md)
    "grpo_qwen25_32b_A3.yaml": "5f96919df10562cc9280a05dd744cbeeafbdcb3b60fd93878e872e1ed6cae402",
    "model/qwen25_32b.yaml": "d3b84fe787a197a65d772d602d3bd7bbf396a02338cd45660775ce7656e24c9e",
}
THE_18_RENAMES = {
    "rl_config.actor_resource.num_npus": "rl_config.actor_resource.num_devices",
    "rl_config.init_kl_coef": "rl_config.kl_coef",
    "rl_config.kl_penalty": "rl_config.kl_estimator",
    "rl_config.adv_estimator": "rl_config.advantage_estimator",
    "rl_config.mini_batch_size": "actor_config.mini_batch_size",
    "rl_config.epochs": "actor_config.epochs",
    "rl_config.max_prompt_length": "megatron_training.max_prompt_length",
    "rl_config.ref_forward_micro_batch_size": "ref_config.micro_batch_size",
    "rl_config.use_integrated_worker": "rl_config.colocate_actor_ref",
    "generate_config.offload_train_param": "actor_config.offload_params",
    "generate_config.offload_train_grad": "actor_config.offload_grads",
    "generate_config.offload_train_optimizer": "actor_config.offload_optimizer",
    "megatron_training.bf16": "actor_config.params_dtype",
    "megatron_training.sequence_parallel": "actor_config.sequence_parallel",
    "megatron_training.use_distributed_optimizer": "actor_config.use_distributed_optimizer",
    "actor_config.save": "megatron_training.save",
    "megatron_training.no_masked_softmax_fusion": "actor_config.masked_softmax_fusion",
    "megatron_training.no_gradient_accumulation_fusion": "actor_config.gradient_accumulation_fusion",
}


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "defaults":
            out.update(_flat(v, key + "."))
        elif k != "defaults":
            out[key] = v
    return out


def _load(config_dir=FIXTURES, name="grpo_qwen25_32b_A3", overrides=()):
    notes = []
    cfg = load_config(name, list(overrides), str(config_dir), notes=notes)
    return cfg, notes


def test_fixtures_are_the_published_files():
    for rel, digest in PUBLISHED_SHA256.items():
        assert hashlib.sha256((FIXTURES / rel).read_bytes()).hexdigest() == digest, rel


def test_run_yaml_validates_with_one_note_per_renamed_or_ignored_key():
    cfg, notes = _load()
    published = _flat(yaml.safe_load(RUN_YAML.read_text()))
    ours = {k for k, _, _ in field_docs(GRPOConfig)}
    renamed = [k for k in published if k in RENAMES]
    ignored = [k for k in published if k in OBSOLETE]
    accepted = [k for k in published if k in ours]
    assert sorted(renamed) == sorted(THE_18_RENAMES)
    assert len(accepted) + len(renamed) + len(ignored) == len(published) == 96
    for old, new in THE_18_RENAMES.items():
        hits = [n for n in notes if n.startswith(f"{old} is renamed")]
        assert len(hits) == 1 and new in hits[0], (old, hits)
    for key in ignored:
        hits = [n for n in notes if n.startswith(f"{key} is not needed here")]
        assert len(hits) == 1, (key, hits)
    # the values arrived where our components read them
    a, r, rl, mt = cfg.actor_config, cfg.ref_config, cfg.rl_config, cfg.megatron_training
    assert rl.actor_resource.num_devices == 16 and rl.kl_coef == 0.001 and rl.kl_estimator == "low_var_kl"
    assert rl.advantage_estimator == "grpo" and rl.colocate_actor_ref is True
    assert a.mini_batch_size == 64 and a.epochs == 1 and mt.max_prompt_length == 1024
    assert r.micro_batch_size == 16 and a.offload_params and a.offload_grads and a.offload_optimizer
    assert a.params_dtype == r.params_dtype == "bf16" and a.sequence_parallel and a.use_distributed_optimizer
    # no_masked_softmax_fusion / no_gradient_accumulation_fusion: true -> the fusions off (engine.kernels)
    assert a.masked_softmax_fusion is r.masked_softmax_fusion is False
    assert a.gradient_accumulation_fusion is r.gradient_accumulation_fusion is False
    assert mt.save == "./ckpt" and a.load == "./ckpt"
    assert a.num_layer_list == [16, 17, 16, 15] and a.adam_beta2 == 0.95 and a.weight_decay == 0.01
    assert rl.verifier_function == ["math_verify_reward"]


def test_model_yaml_with_megatron_names_gives_the_architecture():
    cfg, notes = _load()
    m = cfg.model
    assert (m.num_layers, m.hidden_size, m.ffn_hidden_size, m.num_attention_heads, m.num_query_groups) == (64, 5120, 27648, 40, 8)
    assert m.vocab_size == 152064 and m.rope_theta == 1e6 and m.rms_norm_eps == 1e-5 and m.tie_word_embeddings is False
    assert m.max_position_embeddings == 32768 and m.make_vocab_size_divisible_by == 1 and m.add_qkv_bias
    assert any("MindSpeed-RL model YAML 'qwen25_32b'" in n for n in notes)


def test_colocated_reference_takes_the_actor_layout_and_seq_length_is_reread():
    cfg, notes = _load()
    r, a = cfg.ref_config, cfg.actor_config
    assert (r.tensor_model_parallel_size, r.pipeline_model_parallel_size, r.num_layer_list) == (4, 4, [16, 17, 16, 15])
    assert a.tensor_model_parallel_size == 4
    # MindSpeed-RL's seq_length 1024 is its padding length; ours holds prompt + response
    assert cfg.megatron_training.seq_length == 1024 + 2048
    assert any(n.startswith("megatron_training.seq_length=1024") for n in notes)
    # a reference that sets its own layout keeps it (and must then match, being colocated)
    with pytest.raises(ConfigError, match="ref_config.tensor_model_parallel_size"):
        _load(overrides=["+ref_config.tensor_model_parallel_size=2"])


def _write_variant(tmp_path, edit):
    data = yaml.safe_load(RUN_YAML.read_text())
    edit(data)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "qwen25_32b.yaml").write_bytes((FIXTURES / "model" / "qwen25_32b.yaml").read_bytes())
    (tmp_path / "variant.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


def test_a_typo_is_still_refused_with_did_you_mean(tmp_path):
    d = _write_variant(tmp_path, lambda y: y["rl_config"].update(clip_ration=0.2))
    with pytest.raises(ConfigError) as exc:
        _load(d, "variant")
    assert exc.value.keys == ["rl_config.clip_ration"] and "did you mean 'rl_config.clip_ratio'" in str(exc.value)


def test_an_ignored_key_asking_for_another_behaviour_is_refused(tmp_path):
    d = _write_variant(tmp_path, lambda y: y["rl_config"].update(kl_ctrl_type="adaptive"))
    with pytest.raises(ConfigError) as exc:
        _load(d, "variant")
    assert exc.value.keys == ["rl_config.kl_ctrl_type"] and "'fixed'" in str(exc.value)


def test_a_rename_that_conflicts_with_its_new_key_is_refused(tmp_path):
    d = _write_variant(tmp_path, lambda y: y["rl_config"].update(kl_coef=0.5))
    with pytest.raises(ConfigError) as exc:
        _load(d, "variant")
    assert exc.value.keys == ["rl_config.init_kl_coef"] and "keep only rl_config.kl_coef" in str(exc.value)


def test_num_layer_list_strings():
    data = {"actor_config": {"num_layer_list": "15, 17"}, "ref_config": {"num_layer_list": "3,x"}}
    with pytest.raises(ConfigError, match="ref_config.num_layer_list"):
        translate(data)
    data = {"actor_config": {"num_layer_list": "15, 17"}}
    translate(data)
    assert data["actor_config"]["num_layer_list"] == [15, 17]


def test_step_verifier_is_renamed_and_unknown_names_still_fail(tmp_path):
    d = _write_variant(tmp_path, lambda y: y["rl_config"].update(verifier_function=["acc_for_dapo", "step"],
                                                                 verifier_weight=[1.0, 0.5]))
    cfg, notes = _load(d, "variant")
    assert cfg.rl_config.verifier_function == ["acc_for_dapo", "reasoning_steps"]
    assert any("verifier_function[1]='step'" in n for n in notes)
    d2 = tmp_path / "typo"
    d2.mkdir()
    d2 = _write_variant(d2, lambda y: y["rl_config"].update(verifier_function=["math_verify_rewrd"]))
    with pytest.raises(ConfigError, match="unknown reward function"):
        _load(d2, "variant")


def test_dry_run_prints_the_plan_and_the_notes():
    proc = subprocess.run([sys.executable, "cli/train_grpo.py", "--config-dir", str(FIXTURES), "--config-name",
                           "grpo_qwen25_32b_A3", "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "actor: 16 ranks = TP4 x PP4 x DP1" in proc.stdout and "rollout (vllm): 8 replica(s) of TP2" in proc.stdout
    assert "reference: colocated with the actor" in proc.stdout and "verdict:" in proc.stdout
    assert proc.stderr.count(" is renamed: now ") == len(THE_18_RENAMES)
    assert "rl_config.init_kl_coef is renamed: now rl_config.kl_coef" in proc.stderr


def test_shipped_configs_have_no_mindspeed_notes():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        _, notes = _load(ROOT / "configs", path.stem)
        assert not [n for n in notes if "renamed" in n or "not needed" in n], (path.name, notes)


def test_keys_nothing_read_are_gone_from_the_schema():
    keys = {k for k, _, _ in field_docs(GRPOConfig)}
    for gone in ("model.name", "model.architecture", "rl_config.num_cpus_for_reward",
                 "generate_config.sampling_config.logprobs", "megatron_training.dataset_additional_keys"):
        assert gone not in keys
        assert gone in OBSOLETE  # an old YAML that still sets it is told why, not refused


def test_architecture_is_read_from_config_json(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 1000,
        "max_position_embeddings": 1024, "rope_parameters": {"rope_theta": 5000.0}, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False}))
    cfg, notes = _load(ROOT / "configs", "grpo_tiny_cpu", [f"megatron_training.tokenizer_name_or_path={hf}"])
    m = cfg.model
    assert (m.hidden_size, m.ffn_hidden_size, m.num_layers, m.num_attention_heads, m.num_query_groups) == (256, 512, 4, 8, 4)
    assert (m.vocab_size, m.max_position_embeddings, m.rope_theta, m.tie_word_embeddings, m.add_qkv_bias) == (
        1000, 1024, 5000.0, False, True)
    assert not notes  # grpo_tiny_cpu's model section does not repeat the architecture
    _, notes = _load(ROOT / "configs", "grpo_tiny_cpu", [f"megatron_training.tokenizer_name_or_path={hf}",
                                                         "model.hidden_size=256"])
    assert len(notes) == 1 and "model.{hidden_size} repeat" in notes[0] and str(hf) in notes[0]
    with pytest.raises(ConfigError) as exc:
        _load(ROOT / "configs", "grpo_tiny_cpu", [f"megatron_training.tokenizer_name_or_path={hf}", "model.num_layers=3"])
    assert exc.value.keys == ["model.num_layers"] and "says 4" in str(exc.value)
