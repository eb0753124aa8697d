"""Every documented run-config key is read by a component, and a non-default value set from the
command line reaches the place the component takes it from.

- Static: each schema key is read outside ``mindspeed_rl/config`` (a key only the config package
  touches is a key nothing uses; it must go, with a note for old YAMLs in ``mindspeed_compat``).
- Boundary: each key set to a non-default value through ``load_config`` arrives, unchanged, in the
  typed config, in the dict the trainer hands its Ray workers (``dataclasses.asdict``) and in the
  config a worker rebuilds from it (``from_dict``, as ``ActorRolloutWorker`` does). The engine's and
  the loss's own configs are built from that worker config (issue 19 owns that step).
- Consumers: the rollout's sampling request, the metrics logger and the memory plan take their keys.
"""
import dataclasses
import re
import typing
from pathlib import Path

import pytest

from mindspeed_rl.config import load_config
from mindspeed_rl.config.schema import GRPOConfig
from mindspeed_rl.config.structured import field_docs, from_dict

ROOT = Path(__file__).resolve().parents[2]
KEYS = [(k, d) for k, d, _ in field_docs(GRPOConfig)]


def _leaf_types(cls=GRPOConfig, prefix=""):
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if typing.get_origin(tp) is typing.Union:  # an optional section (critic_config)
            tp = next((a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)), tp)
        if dataclasses.is_dataclass(tp):
            out.update(_leaf_types(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


TYPES = _leaf_types()
SPECIAL = {  # values the generic rule cannot make (structured or path-like keys)
    "rl_config.val_datasets": [{"dataset": {"name": "math500"}, "n": 2}],
    "rl_config.verifier_function": ["acc", "format", "reasoning_steps"],
    "rl_config.verifier_weight": [0.5, 0.25],
    "actor_config.num_layer_list": [1, 1],
    "ref_config.num_layer_list": [1, 1],
    "critic_config.num_layer_list": [1, 1],
    "generate_config.sampling_config.seed": 7,
    "generate_config.kv_cache_memory_mb": 64,
    "rl_config.clip_ratio_low": 0.1,
    "rl_config.clip_ratio_high": 0.3,
    "rl_config.clip_ratio_c": 3.0,
    # kernel keys: empty means the platform's default (engine.kernels); any explicit value is non-default
    **{f"{role}.{key}": value for role in ("actor_config", "ref_config", "critic_config") for key, value in (
        ("bias_activation_fusion", False), ("masked_softmax_fusion", False), ("bias_dropout_fusion", False),
        ("apply_rope_fusion", False), ("persist_layer_norm", False), ("gradient_accumulation_fusion", False),
        ("recompute_granularity", "full"), ("recompute_method", "block"), ("recompute_num_layers", 2))},
}


def _non_default(key, default):
    if key in SPECIAL:
        return SPECIAL[key]
    tp = TYPES[key]
    if typing.get_origin(tp) is typing.Literal:
        return next(a for a in typing.get_args(tp) if a != default)
    if tp is bool:
        return not default
    if tp is int:
        return default + 3
    if tp is float:
        return default * 2 + 0.125
    if tp is str:
        return f"/tmp/wiring/{key}"
    raise AssertionError(f"{key}: no non-default value rule for {tp}; add it to SPECIAL")


def _override(key, value) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return f"{key}=[{{dataset:{{name:math500}},n:2}}]"  # Hydra's override grammar for SPECIAL's entry
    if isinstance(value, list):
        return f"{key}=[{','.join(map(str, value))}]"
    return f"{key}={value}"


def _get(obj, key):
    for part in key.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def test_every_schema_key_is_read_outside_the_config_package():
    sources = [p.read_text() for p in (ROOT / "mindspeed_rl").rglob("*.py") if "mindspeed_rl/config/" not in p.as_posix()]
    sources += [p.read_text() for p in (ROOT / "cli").glob("*.py")]
    text = "\n".join(sources)
    unread = [key for key, _ in KEYS
              if not re.search(r"\.%s\b|[\"']%s[\"']" % ((key.rsplit(".", 1)[1],) * 2), text)]
    assert not unread, f"documented keys nothing reads (remove them, noting them in mindspeed_compat.OBSOLETE): {unread}"


@pytest.mark.parametrize("key,default", KEYS, ids=[k for k, _ in KEYS])
def test_a_non_default_value_reaches_the_workers(key, default, tmp_path, monkeypatch):
    # The config's relative paths (./work_dirs/...) must not resolve to a prepared demo: its HF
    # config.json would make the architecture check refuse the model.* overrides.
    monkeypatch.chdir(tmp_path)
    value = _non_default(key, default)
    assert value != default
    base = "ppo_tiny_cpu" if key.startswith("critic_config.") else "grpo_tiny_cpu"  # the section is optional
    cfg = load_config(base, [_override(key, value)], check=False)
    worker_dict = dataclasses.asdict(cfg)  # what GRPOTrainer hands ActorRolloutWorker / ReferenceWorker
    rebuilt = from_dict(GRPOConfig, worker_dict)  # what the worker builds its engines from
    for where in (cfg, worker_dict, rebuilt):
        got = _get(where, key)
        if key == "rl_config.val_datasets":
            got = [dict(v) for v in got]
        assert got == value, (key, where.__class__.__name__, got)


def test_sampling_keys_reach_the_rollout_request():
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    cfg = load_config("grpo_tiny_cpu", ["generate_config.sampling_config.temperature=0.7",
                                        "generate_config.sampling_config.top_p=0.9", "generate_config.sampling_config.top_k=5",
                                        "generate_config.sampling_config.min_p=0.05",
                                        "generate_config.sampling_config.max_tokens=33",
                                        "generate_config.sampling_config.seed=11", "rl_config.n_samples_per_prompt=4",
                                        "megatron_training.global_batch_size=8", "actor_config.mini_batch_size=8",
                                        "actor_config.micro_batch_size=4", "ref_config.micro_batch_size=4"])
    sent = {}

    class Stub:  # the trainer's state rollout() reads; generate() records the request
        stop_ids = [7]

        def generate(self, prompts, sampling):
            sent.update(sampling)
            return []

    Stub.cfg = cfg
    GRPOTrainer.rollout(Stub(), [[1, 2]], iteration=2)
    assert (sent["n"], sent["temperature"], sent["top_p"], sent["top_k"], sent["min_p"], sent["max_tokens"]) == (
        4, 0.7, 0.9, 5, 0.05, 33)
    assert sent["seed"] == 11 * 1000003 + 2 and sent["stop_token_ids"] == [7] and sent["logprobs"] is True


def test_planning_keys_reach_the_memory_plan():
    from mindspeed_rl.planning import plan_memory

    def peak(*overrides):
        plan = plan_memory(load_config("grpo_qwen25_32b", list(overrides)))
        return {p.name: sum(p.parts.values()) for p in plan.phases}, plan.render()

    base, text = peak()
    more_mbs, _ = peak("actor_config.micro_batch_size=2")
    assert more_mbs["update"] > base["update"]
    less_vllm, _ = peak("generate_config.gpu_memory_utilization=0.5")
    assert less_vllm["rollout"] < base["rollout"]
    _, refused = peak("rl_config.device_memory_gb=32")
    assert "REFUSED" in refused and "REFUSED" not in text
