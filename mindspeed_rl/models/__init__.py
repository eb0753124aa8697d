"""Per-architecture knowledge: HF config <-> Megatron config, HF <-> Megatron names and shard layouts.

This room is the single source of truth for parameter names and shard layouts. Three consumers
use it: the checkpoint converter (``tools/convert/convert_ckpt.py``, streaming on disk), the
Megatron training engine (build a GPTModel from a HF config, load a converted checkpoint), and the
weight sync actor -> rollout engine (full HF-named tensors from a live sharded model).

Entry point::

    from mindspeed_rl.models import get_bridge
    bridge = get_bridge(hf_config)          # transformers config, dict or path to config.json
                                            # keyed by config.architectures[0]

Megatron model side (engine)::

    bridge.validate_parallelism(tp, pp, num_layer_list)   # ParallelismError before anything starts
    cfg = bridge.transformer_config(tp, pp, params_dtype=torch.bfloat16, num_layer_list=None,
                                    **transformer_config_overrides)
    spec = bridge.layer_spec(use_te=False)               # local spec on CPU, TE spec on GPU
    model = GPTModel(cfg, spec, **bridge.gpt_model_kwargs(tp, padded_vocab=meta.padded_vocab),
                     pre_process=..., post_process=...)
    bridge.padded_vocab_size(tp, make_vocab_size_divisible_by=128)
    bridge.layers_for_stage(pp_rank, pp, num_layer_list) # range of global layer indices
    load_rank_checkpoint(model, load_dir, tp_rank, pp_rank)   # mcore_checkpoint, any spec

Parameter map (pure, no I/O)::

    specs = bridge.stage_params(pp_rank, pp, padded_vocab, num_layer_list)   # list[ParamSpec]
    spec.mcore_name   # canonical local-spec name with the stage-local layer index
    spec.global_name  # same name with the global layer index
    spec.hf_names     # HF tensors it is made from (q,k,v / gate,up / one tensor)
    spec.layout.split(hf_tensors, tp)  -> [shard for tp_rank in range(tp)]
    spec.layout.to_hf(shards)          -> [full HF tensor for each of spec.hf_names]
    spec.layout.hf_rows(tp, rank), spec.layout.to_local(parts, tp, rank)   # row-sliced streaming
    naming.to_te_name / from_te_name / shift_layer_index                   # TE spec, local<->global

Layouts (``layouts.py``): Replicated (norms), RowParallel (o_proj, down_proj: split dim 1),
ColumnParallel, VocabParallel (zero-padded to the padded vocab, split dim 0; padded logits must be
ignored), QKV (Megatron groups [q heads of group g; k_g; v_g] per query group, TP splits by group;
same for the Qwen2 q/k/v biases), GateUp (rank r holds [gate_r; up_r]). Tied embeddings: the HF
checkpoint has only ``model.embed_tokens.weight``; with PP > 1 the last stage also stores it as
``output_layer.weight``, with PP = 1 ``output_layer`` has no weight of its own.

``spec.is_tied_copy``: the last stage's output_layer copy of a tied embedding (skip on export).

Weight sync (``weight_sync.py``)::

    for bucket in iter_hf_weights(model, bridge, padded_vocab, num_layer_list, bucket_bytes=512 << 20,
                                  tp_group=tp_group, pp_group=pp_group):
        rollout.load_weights(bucket)        # [(hf_name, full tensor)], same on every rank

gathers TP shards (all-gather) and PP stages (broadcast from the owning stage) of a live model,
collectively over the model-parallel group.

Checkpoints: ``mcore_checkpoint.py`` (the Megatron on-disk format, ``load_rank_checkpoint``),
``hf_checkpoint.py`` (lazy safetensors reader, streaming writer), ``convert.py`` (``hf_to_mcore``,
``mcore_to_hf``: validation first, temp dir renamed into place), ``random_checkpoint.py``
(random-weight HF checkpoints for tests and benchmarks, ``tiny_qwen2_config``).

A new architecture is one file: subclass ``bridge.GPTBridge`` (or a sibling), set
``architectures`` and what differs, and list it in ``_BRIDGES`` below.
"""
from __future__ import annotations

import os
from typing import Any

from mindspeed_rl.models.errors import (  # noqa: F401 - re-exported
    CheckpointError,
    ModelsError,
    ParallelismError,
    UnsupportedModelError,
)

# architecture name -> "module:Class" (imported on first use; keeps `import mindspeed_rl` light)
_BRIDGES = {
    "Qwen2ForCausalLM": "mindspeed_rl.models.qwen2:Qwen2Bridge",
    "LlamaForCausalLM": "mindspeed_rl.models.llama:LlamaBridge",
}


def supported_architectures() -> list[str]:
    return sorted(_BRIDGES)


def register_bridge(architecture: str, target: str) -> None:
    """Register ``"package.module:Class"`` for a HF ``architectures`` entry."""
    _BRIDGES[architecture] = target


def _load_config(hf_config: Any) -> dict:
    if isinstance(hf_config, (str, os.PathLike)):
        path = os.fspath(hf_config)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: no config.json; point at a Hugging Face model directory")
        from mindspeed_rl.utils.fs import FileFormatError, read_json

        try:
            return read_json(path, "model config")
        except FileFormatError as exc:
            raise CheckpointError(str(exc)) from None
    if hasattr(hf_config, "to_dict"):
        return hf_config.to_dict()
    return dict(hf_config)


def get_bridge(hf_config: Any):
    """The bridge for a HF config (transformers config, dict, or a model directory / config.json)."""
    import importlib

    cfg = _load_config(hf_config)
    archs = cfg.get("architectures") or []
    if not archs and cfg.get("model_type") == "qwen2":
        archs = ["Qwen2ForCausalLM"]
    for arch in archs:
        if arch in _BRIDGES:
            module, cls = _BRIDGES[arch].split(":")
            return getattr(importlib.import_module(module), cls)(cfg)
    raise UnsupportedModelError(
        f"architectures={archs} in config.json has no mapping; supported: {supported_architectures()} "
        "(add one in mindspeed_rl/models)"
    )
