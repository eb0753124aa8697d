"""The policy's architecture comes from its HF ``config.json``, not from the run config.

``resolve_architecture(data)`` fills the ``model`` section of a composed run config from
``<model.hf_config_dir or megatron_training.tokenizer_name_or_path>/config.json`` when that file is
there. Architecture keys the section still writes are checked against it: a key that agrees is
reported once (it repeats the file and can go), one that disagrees is a ``Problem`` naming both
values. Without a reachable ``config.json`` (planning a cluster run on a laptop with ``--dry-run``)
the section's keys are the declared architecture, as before; the trainer checks them against the
file on the cluster (``workers.actor_worker.check_hf_config_matches``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from mindspeed_rl.config.errors import ConfigError, Problem

# ModelConfig key -> config.json key
HF_KEYS = {
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads",
    "num_query_groups": "num_key_value_heads",
    "ffn_hidden_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "max_position_embeddings",
    "rope_theta": "rope_theta",
    "rms_norm_eps": "rms_norm_eps",
    "tie_word_embeddings": "tie_word_embeddings",
    "add_qkv_bias": "attention_bias",
}
ARCHITECTURE_KEYS = tuple(HF_KEYS)


def hf_config_path(data: dict) -> Optional[Path]:
    model = data.get("model") or {}
    mt = data.get("megatron_training") or {}
    hf_dir = model.get("hf_config_dir") or mt.get("tokenizer_name_or_path")
    return Path(hf_dir) / "config.json" if hf_dir else None


def architecture_from_hf(hf: dict) -> dict[str, Any]:
    """ModelConfig's architecture keys from a config.json's contents (HF class defaults filled in)."""
    out: dict[str, Any] = {}
    for ours, theirs in HF_KEYS.items():
        if theirs in hf:
            out[ours] = hf[theirs]
    if "num_query_groups" not in out and "num_attention_heads" in out:
        out["num_query_groups"] = out["num_attention_heads"]  # no GQA: one group per head
    if "rope_theta" not in out and isinstance(hf.get("rope_parameters"), dict) and "rope_theta" in hf["rope_parameters"]:
        out["rope_theta"] = hf["rope_parameters"]["rope_theta"]  # transformers 5 writes it there
    archs = hf.get("architectures") or []
    qwen2 = hf.get("model_type") == "qwen2" or any(str(a).startswith("Qwen2") for a in archs)
    if qwen2:
        out["add_qkv_bias"] = True  # Qwen2 always has the QKV bias; its config.json does not say so
    out.setdefault("add_qkv_bias", False)
    out.setdefault("tie_word_embeddings", False)  # Qwen2Config / LlamaConfig default
    for key in ("rope_theta", "rms_norm_eps"):
        if key in out:
            out[key] = float(out[key])
    return out


def resolve_architecture(data: dict) -> list[str]:
    """Fill ``data['model']`` from config.json when reachable; return the notes (see module doc)."""
    path = hf_config_path(data)
    if path is None or not path.is_file():
        return []
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []  # the preflight names a damaged file with its key; the declared keys stand until then
    model = data.setdefault("model", {})
    arch = architecture_from_hf(hf)
    problems, repeated = [], []
    for key, theirs in arch.items():
        if key not in model:
            continue
        mine = model[key]
        same = (float(mine) == float(theirs)) if isinstance(theirs, float) and not isinstance(mine, bool) and isinstance(
            mine, (int, float)) else mine == theirs
        if same:
            repeated.append(key)
        else:
            problems.append(Problem(f"model.{key}", mine, f"{path} says {theirs!r}",
                                    f"remove model.{key} (the architecture is read from config.json), or point "
                                    "model.hf_config_dir at the model you mean"))
    if problems:
        raise ConfigError(problems, "model section")
    model.update(arch)
    if repeated:
        return [f"model.{{{', '.join(repeated)}}} repeat {path} and can be removed: the architecture is read from "
                "the model's config.json"]
    return []
