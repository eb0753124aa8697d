"""The bridge between a Hugging Face decoder-only checkpoint and a megatron-core GPTModel.

``GPTBridge`` holds everything generic to Llama-style decoders (RMSNorm, SwiGLU, RoPE, GQA):
Megatron config, layer spec, vocab padding, pipeline partition and the per-parameter map. An
architecture file (``qwen2.py``, ``llama.py``) subclasses it to say what differs (QKV bias,
config key names, what it refuses). Megatron names here are *canonical*: the local-spec names
(``input_layernorm.weight``, ``pre_mlp_layernorm.weight``); ``naming.to_te_name`` /
``naming.from_te_name`` translate for the Transformer-Engine spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from mindspeed_rl.models import layouts as L
from mindspeed_rl.models.errors import ParallelismError, UnsupportedModelError

MCORE_LAYER_PREFIX = "decoder.layers."


@dataclass(frozen=True)
class ParamSpec:
    """One Megatron parameter on one pipeline stage and where it comes from in the HF checkpoint."""

    mcore_name: str  # canonical name, layer index local to the stage (what the rank's state dict holds)
    global_name: str  # same with the global layer index (what weight sync and logs use)
    hf_names: tuple[str, ...]
    layout: L.Layout

    @property
    def is_tied_copy(self) -> bool:
        """The last stage's ``output_layer.weight`` copy of a tied embedding (PP > 1): not an HF
        tensor of its own, so exporters skip it (the embedding already carries the weights)."""
        return self.mcore_name == "output_layer.weight" and self.hf_names == ("model.embed_tokens.weight",)


def _to_dict(hf_config: Any) -> dict:
    if isinstance(hf_config, Mapping):
        return dict(hf_config)
    if hasattr(hf_config, "to_dict"):
        return hf_config.to_dict()
    raise TypeError(f"expected a transformers config or a dict, got {type(hf_config).__name__}")


class GPTBridge:
    """Generic RMSNorm + SwiGLU + RoPE + GQA decoder. Subclasses set ``architectures``."""

    architectures: tuple[str, ...] = ()
    # (megatron suffix under decoder.layers.N., HF suffixes under model.layers.N.)
    hf_layer_prefix = "model.layers."

    def __init__(self, hf_config: Any):
        self.hf_config = _to_dict(hf_config)
        c = self.hf_config
        self._check_supported(c)
        self.num_layers = int(c["num_hidden_layers"])
        self.hidden_size = int(c["hidden_size"])
        self.num_heads = int(c["num_attention_heads"])
        self.num_query_groups = int(c.get("num_key_value_heads") or self.num_heads)
        self.head_dim = int(c.get("head_dim") or self.hidden_size // self.num_heads)
        self.ffn_hidden_size = int(c["intermediate_size"])
        self.vocab_size = int(c["vocab_size"])
        self.tie_word_embeddings = bool(c.get("tie_word_embeddings", False))
        self.rms_norm_eps = float(c.get("rms_norm_eps", 1e-6))
        self.max_position_embeddings = int(c.get("max_position_embeddings", 4096))
        rope = c.get("rope_parameters") or {}
        self.rope_theta = float(c.get("rope_theta") or rope.get("rope_theta") or 10000.0)
        self.attention_dropout = float(c.get("attention_dropout", 0.0) or 0.0)

    # ----- what a subclass says -------------------------------------------------------------
    @property
    def add_qkv_bias(self) -> bool:
        return False

    def _check_supported(self, c: dict) -> None:
        rope = c.get("rope_scaling") or c.get("rope_parameters") or {}
        rope_type = rope.get("rope_type") or rope.get("type") or "default"
        if rope_type != "default":
            raise UnsupportedModelError(
                f"rope scaling type {rope_type!r} in config.json is not supported by the converter; "
                "remove rope_scaling (long-context scaling) or add it to mindspeed_rl/models"
            )
        if c.get("hidden_act", "silu") != "silu":
            raise UnsupportedModelError(f"hidden_act={c.get('hidden_act')!r} is not supported (only silu / SwiGLU)")
        if c.get("mlp_bias"):
            raise UnsupportedModelError("mlp_bias=true is not supported (Megatron add_bias_linear would add o_proj bias too)")

    # ----- shapes and partitions ------------------------------------------------------------
    def padded_vocab_size(self, tp: int, make_vocab_size_divisible_by: int = 128) -> int:
        """Megatron's rule: round the vocab up to a multiple of ``make_vocab_size_divisible_by * tp``."""
        multiple = make_vocab_size_divisible_by * tp
        return -(-self.vocab_size // multiple) * multiple

    def layer_partition(self, pp: int, num_layer_list: Optional[Sequence[int]] = None) -> list[int]:
        """Layers per pipeline stage (even split unless ``num_layer_list`` is given)."""
        if pp < 1:
            raise ParallelismError(f"pipeline parallel size must be >= 1, got {pp}")
        if num_layer_list:
            counts = [int(x) for x in num_layer_list]
            if len(counts) != pp:
                raise ParallelismError(
                    f"num_layer_list {counts} has {len(counts)} entries but pp={pp}; give one count per stage"
                )
            if sum(counts) != self.num_layers or min(counts) < 1:
                raise ParallelismError(
                    f"num_layer_list {counts} must be positive and sum to num_hidden_layers={self.num_layers}"
                )
            return counts
        if self.num_layers % pp:
            raise ParallelismError(
                f"pp={pp} does not divide num_hidden_layers={self.num_layers}; "
                "choose a divisor or pass num_layer_list (e.g. --num-layer-list 3,5)"
            )
        return [self.num_layers // pp] * pp

    def layers_for_stage(self, pp_rank: int, pp: int, num_layer_list: Optional[Sequence[int]] = None) -> range:
        """Global layer indices held by pipeline stage ``pp_rank``."""
        counts = self.layer_partition(pp, num_layer_list)
        start = sum(counts[:pp_rank])
        return range(start, start + counts[pp_rank])

    def validate_parallelism(self, tp: int, pp: int, num_layer_list: Optional[Sequence[int]] = None) -> None:
        """Raise ParallelismError naming the offending size before anything is built or written."""
        if tp < 1:
            raise ParallelismError(f"tensor parallel size must be >= 1, got {tp}")
        for what, n in (
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads (query groups)", self.num_query_groups),
            ("intermediate_size (ffn)", self.ffn_hidden_size),
        ):
            if n % tp:
                raise ParallelismError(f"tp={tp} does not divide {what}={n}; choose a tp that divides it")
        if self.num_heads % self.num_query_groups:
            raise UnsupportedModelError(
                f"num_attention_heads={self.num_heads} is not a multiple of num_key_value_heads={self.num_query_groups}"
            )
        self.layer_partition(pp, num_layer_list)

    # ----- parameter map --------------------------------------------------------------------
    def layer_rules(self) -> list[tuple[str, tuple[str, ...], L.Layout]]:
        """(megatron suffix, HF suffixes, layout) for one transformer layer."""
        qkv = L.QKV(self.num_heads, self.num_query_groups, self.head_dim)
        rules = [
            ("input_layernorm.weight", ("input_layernorm.weight",), L.Replicated()),
            (
                "self_attention.linear_qkv.weight",
                ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
                qkv,
            ),
        ]
        if self.add_qkv_bias:
            rules.append(
                (
                    "self_attention.linear_qkv.bias",
                    ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"),
                    qkv,
                )
            )
        rules += [
            ("self_attention.linear_proj.weight", ("self_attn.o_proj.weight",), L.RowParallel()),
            ("pre_mlp_layernorm.weight", ("post_attention_layernorm.weight",), L.Replicated()),
            ("mlp.linear_fc1.weight", ("mlp.gate_proj.weight", "mlp.up_proj.weight"), L.GateUp(self.ffn_hidden_size)),
            ("mlp.linear_fc2.weight", ("mlp.down_proj.weight",), L.RowParallel()),
        ]
        return rules

    def stage_params(
        self,
        pp_rank: int = 0,
        pp: int = 1,
        padded_vocab: Optional[int] = None,
        num_layer_list: Optional[Sequence[int]] = None,
    ) -> list[ParamSpec]:
        """Every Megatron parameter of pipeline stage ``pp_rank``, in state-dict order."""
        padded_vocab = padded_vocab or self.vocab_size
        vocab = L.VocabParallel(self.vocab_size, padded_vocab)
        layers = self.layers_for_stage(pp_rank, pp, num_layer_list)
        specs: list[ParamSpec] = []
        if pp_rank == 0:
            specs.append(ParamSpec("embedding.word_embeddings.weight", "embedding.word_embeddings.weight",
                                   ("model.embed_tokens.weight",), vocab))
        for local, glob in enumerate(layers):
            for suffix, hf_suffixes, layout in self.layer_rules():
                specs.append(
                    ParamSpec(
                        f"{MCORE_LAYER_PREFIX}{local}.{suffix}",
                        f"{MCORE_LAYER_PREFIX}{glob}.{suffix}",
                        tuple(f"{self.hf_layer_prefix}{glob}.{s}" for s in hf_suffixes),
                        layout,
                    )
                )
        if pp_rank == pp - 1:
            specs.append(ParamSpec("decoder.final_layernorm.weight", "decoder.final_layernorm.weight",
                                   ("model.norm.weight",), L.Replicated()))
            if not self.tie_word_embeddings:
                specs.append(ParamSpec("output_layer.weight", "output_layer.weight", ("lm_head.weight",), vocab))
            elif pp > 1:
                # Tied embeddings: the last stage keeps its own copy of the embedding as output layer
                # (megatron-core keeps the two in sync through the embedding group).
                specs.append(ParamSpec("output_layer.weight", "output_layer.weight",
                                       ("model.embed_tokens.weight",), vocab))
        return specs

    def hf_param_names(self) -> list[str]:
        """Every tensor the HF checkpoint must contain."""
        names = ["model.embed_tokens.weight"]
        for i in range(self.num_layers):
            for _, hf_suffixes, _ in self.layer_rules():
                names += [f"{self.hf_layer_prefix}{i}.{s}" for s in hf_suffixes]
        names.append("model.norm.weight")
        if not self.tie_word_embeddings:
            names.append("lm_head.weight")
        return names

    def hf_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected shape of every HF tensor (checked before converting)."""
        h, d, ffn = self.hidden_size, self.head_dim, self.ffn_hidden_size
        per_layer = {
            "input_layernorm.weight": (h,),
            "post_attention_layernorm.weight": (h,),
            "self_attn.q_proj.weight": (self.num_heads * d, h),
            "self_attn.k_proj.weight": (self.num_query_groups * d, h),
            "self_attn.v_proj.weight": (self.num_query_groups * d, h),
            "self_attn.q_proj.bias": (self.num_heads * d,),
            "self_attn.k_proj.bias": (self.num_query_groups * d,),
            "self_attn.v_proj.bias": (self.num_query_groups * d,),
            "self_attn.o_proj.weight": (h, self.num_heads * d),
            "mlp.gate_proj.weight": (ffn, h),
            "mlp.up_proj.weight": (ffn, h),
            "mlp.down_proj.weight": (h, ffn),
        }
        shapes = {}
        for name in self.hf_param_names():
            if name.startswith(self.hf_layer_prefix):
                shapes[name] = per_layer[name.split(".", 3)[3]]
            elif name == "model.norm.weight":
                shapes[name] = (h,)
            else:
                shapes[name] = (self.vocab_size, h)
        return shapes

    # ----- Megatron model construction ------------------------------------------------------
    def transformer_config(
        self,
        tp: int = 1,
        pp: int = 1,
        params_dtype: Any = None,
        num_layer_list: Optional[Sequence[int]] = None,
        **overrides: Any,
    ):
        """A megatron-core ``TransformerConfig`` for this model at the given parallel sizes.

        Fusions that need CUDA kernels are off by default; pass ``overrides`` (any
        TransformerConfig field) to turn them on, set recompute, sequence parallel, etc.
        """
        import torch

        from mindspeed_rl.utils.imports import require

        tc = require("megatron.core.transformer", purpose="building a Megatron TransformerConfig")
        self.validate_parallelism(tp, pp, num_layer_list)
        params_dtype = params_dtype or torch.float32
        kwargs: dict[str, Any] = dict(
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            num_attention_heads=self.num_heads,
            num_query_groups=self.num_query_groups,
            kv_channels=self.head_dim,
            ffn_hidden_size=self.ffn_hidden_size,
            normalization="RMSNorm",
            layernorm_epsilon=self.rms_norm_eps,
            gated_linear_unit=True,
            activation_func=torch.nn.functional.silu,
            add_bias_linear=False,
            add_qkv_bias=self.add_qkv_bias,
            hidden_dropout=0.0,
            attention_dropout=self.attention_dropout,
            tensor_model_parallel_size=tp,
            pipeline_model_parallel_size=pp,
            params_dtype=params_dtype,
            pipeline_dtype=params_dtype,
            bf16=params_dtype == torch.bfloat16,
            fp16=params_dtype == torch.float16,
            use_cpu_initialization=True,
            bias_activation_fusion=False,
            bias_dropout_fusion=False,
            masked_softmax_fusion=False,
            apply_rope_fusion=False,
            gradient_accumulation_fusion=False,
            persist_layer_norm=False,
        )
        counts = self.layer_partition(pp, num_layer_list)
        if pp > 1 and len(set(counts)) > 1:
            # Arbitrary uneven split: megatron-core's per-stage layout (embedding on the first
            # stage, loss on the last).
            layout = [["decoder"] * n for n in counts]
            layout[0].insert(0, "embedding")
            layout[-1].append("loss")
            kwargs["pipeline_model_parallel_layout"] = layout
        kwargs.update(overrides)
        return tc.TransformerConfig(**kwargs)

    def layer_spec(self, use_te: bool = False, config=None, core_attention=None):
        """megatron-core layer spec: local (pure torch, CPU) or Transformer Engine (GPU). Given a
        ``config`` with sequence parallelism, the local spec comes as a block spec whose norms
        support it (megatron-core's torch norm refuses it). ``core_attention``: a module replacing
        the local spec's DotProductAttention (``engine.sdpa_attention``)."""
        from mindspeed_rl.utils.imports import require

        specs = require("megatron.core.models.gpt.gpt_layer_specs", purpose="building a Megatron layer spec")
        if use_te:
            if core_attention is not None:
                raise ValueError("core_attention replaces the local spec's attention; the TE spec has its own")
            return specs.get_gpt_layer_with_transformer_engine_spec()
        spec = specs.get_gpt_layer_local_spec(normalization="RMSNorm")
        if core_attention is not None:
            import dataclasses

            attn = spec.submodules.self_attention
            attn = dataclasses.replace(attn, submodules=dataclasses.replace(attn.submodules, core_attention=core_attention))
            spec = dataclasses.replace(spec, submodules=dataclasses.replace(spec.submodules, self_attention=attn))
        if config is not None and config.sequence_parallel:
            from mindspeed_rl.models.sequence_parallel_norm import local_spec_for_sequence_parallel

            return local_spec_for_sequence_parallel(spec, config)
        return spec

    def gpt_model_kwargs(self, tp: int = 1, make_vocab_size_divisible_by: int = 128,
                         padded_vocab: Optional[int] = None) -> dict[str, Any]:
        """Keyword arguments for ``GPTModel(config, transformer_layer_spec, **kwargs, pre_process=..., post_process=...)``."""
        return dict(
            vocab_size=padded_vocab or self.padded_vocab_size(tp, make_vocab_size_divisible_by),
            max_sequence_length=self.max_position_embeddings,
            position_embedding_type="rope",
            rotary_percent=1.0,
            rotary_base=int(self.rope_theta) if float(self.rope_theta).is_integer() else self.rope_theta,
            share_embeddings_and_output_weights=self.tie_word_embeddings,
        )
