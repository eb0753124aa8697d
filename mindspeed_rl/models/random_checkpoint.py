"""Random-weight HF models for tests, demos and benchmarks: the tiny Qwen2 config they share,
a random checkpoint written tensor by tensor, and a random transformers model.

``write_random_hf_checkpoint`` instantiates no model (a 0.5B-shaped bf16 checkpoint is written
with the memory of one tensor). Every tensor, biases and norms included, is random so that a
mapping bug cannot hide behind zeros or ones. ``random_hf_model`` builds a transformers model
with transformers' own initialisation, the same weights for the same config and seed.
"""
from __future__ import annotations

import json
import os
import zlib
from typing import Optional

import torch

from mindspeed_rl.models import get_bridge
from mindspeed_rl.models.hf_checkpoint import INDEX_NAME, SafetensorsStreamWriter


def _random_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + zlib.crc32(name.encode()))
    if name.endswith("norm.weight"):
        t = 1.0 + 0.1 * torch.randn(shape, generator=g)
    elif name.endswith(".bias"):
        t = 0.1 * torch.randn(shape, generator=g)
    else:
        t = 0.02 * torch.randn(shape, generator=g)
    return t.to(dtype)


def write_random_hf_checkpoint(
    out_dir: str,
    config: dict,
    dtype: torch.dtype = torch.bfloat16,
    max_shard_bytes: Optional[int] = None,
    seed: int = 0,
) -> int:
    """Write config.json + (sharded) safetensors with random weights; returns the weight bytes."""
    bridge = get_bridge(config)
    shapes = bridge.hf_shapes()
    entries = [(n, dtype, shapes[n]) for n in bridge.hf_param_names()]
    sizes = [int(torch.Size(s).numel()) * dtype.itemsize for _, _, s in entries]
    limit = max_shard_bytes or sum(sizes) + 1
    shards, cur, size = [], [], 0
    for e, n in zip(entries, sizes):
        if cur and size + n > limit:
            shards.append(cur)
            cur, size = [], 0
        cur.append(e)
        size += n
    shards.append(cur)
    os.makedirs(out_dir, exist_ok=True)
    names = (["model.safetensors"] if len(shards) == 1
             else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    weight_map = {}
    for fname, shard in zip(names, shards):
        w = SafetensorsStreamWriter(os.path.join(out_dir, fname), shard, {"format": "pt"})
        for name, dt, shape in shard:
            w.write(name, _random_tensor(name, shape, dt, seed))
            weight_map[name] = fname
        w.close()
    if len(shards) > 1:
        with open(os.path.join(out_dir, INDEX_NAME), "w", encoding="utf-8") as f:
            json.dump({"metadata": {"total_size": sum(sizes)}, "weight_map": weight_map}, f, indent=2)
    cfg = dict(config)
    cfg["torch_dtype"] = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}[dtype]
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    return sum(sizes)


def tiny_qwen2_config(**overrides) -> dict:
    """A few-KB Qwen2 config with GQA and QKV bias (vocab deliberately not a power of two)."""
    cfg = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": 250,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
    }
    cfg.update(overrides)
    return cfg


def qwen25_05b_config() -> dict:
    """Qwen2.5-0.5B's shape (public config.json values)."""
    return tiny_qwen2_config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        rope_theta=1000000.0, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643,
    )


def random_hf_model(config: dict, seed: int = 0):
    """A transformers model of ``config`` (a config.json dict, e.g. ``tiny_qwen2_config(...)``),
    initialised by transformers from ``seed``; fp32, in eval mode."""
    import transformers

    kwargs = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "torch_dtype")}
    arch = (config.get("architectures") or ["Qwen2ForCausalLM"])[0]
    cls = getattr(transformers, arch)
    torch.manual_seed(seed)
    model = cls(cls.config_class(architectures=[arch], **kwargs))
    return model.to(torch.float32).eval()
