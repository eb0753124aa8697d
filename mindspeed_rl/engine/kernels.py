"""Which kernels the engine's GPTModel uses: layer spec, fusions, attention backend, recompute,
packed sequences. Chosen per platform, overridable from ``actor_config`` / ``ref_config``.

``KernelConfig`` holds what the run asked for (``None``: the platform's default);
``resolve_kernels(cfg, platform, ...)`` turns it into ``ResolvedKernels``: the layer-spec choice
and the ``TransformerConfig`` keyword arguments, or raises ``KernelError`` naming the field for a
combination the platform cannot run (Transformer Engine on CPU, flash attention without TE, a
fusion whose kernel is not installed, ...). The same resolver runs in ``config.validate()`` (on
the driver's platform) and when each rank builds its model (on its own), so a bad value is
refused before launch and never silently replaced by something slower or different.

Platform defaults:

* ``cpu``: local spec (pure torch), every fusion off, ``sdpa`` attention (torch's fused SDPA in
  the local spec; ``local`` is megatron's unfused DotProductAttention), CPU initialisation.
* ``cuda``: Transformer Engine spec when TE is importable (else local with ``sdpa``); the jit fusions
  (bias+SwiGLU, bias+dropout+add) on; with TE also RoPE fusion, TE's own attention backend
  choice (``auto``) and the fused weight-gradient accumulation. ``persist_layer_norm`` (Apex) off.
* ``npu``: MindSpeed's: local spec, which MindSpeed patches with its kernels (its switches are
  ``megatron_training.use_flash_attn`` etc.); Megatron's CUDA fusions off.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional

TRANSFORMER_IMPLS = ("auto", "local", "transformer_engine")
# megatron.core.transformer.enums.AttnBackend, plus sdpa: the local spec with torch's fused
# scaled_dot_product_attention as core attention (engine/sdpa_attention.py)
ATTENTION_BACKENDS = ("auto", "flash", "fused", "unfused", "local", "sdpa")
RECOMPUTE_GRANULARITIES = ("full", "selective")
RECOMPUTE_METHODS = ("uniform", "block")
FUSIONS = ("bias_activation_fusion", "masked_softmax_fusion", "bias_dropout_fusion", "apply_rope_fusion",
           "persist_layer_norm", "gradient_accumulation_fusion")
PLATFORMS = ("cpu", "cuda", "npu")


class KernelError(ValueError):
    """A kernel setting the platform cannot run. ``field`` is the KernelConfig field (= run key)."""

    def __init__(self, field_name: str, message: str):
        # the engine's messages start with the field, "name=value: why" (config.components reads it)
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass
class KernelConfig:
    """What the run asks for; ``None`` everywhere means: the platform's defaults."""

    transformer_impl: str = "auto"  # auto | local | transformer_engine
    attention_backend: str = "auto"  # auto | flash | fused | unfused | local | sdpa
    bias_activation_fusion: Optional[bool] = None
    masked_softmax_fusion: Optional[bool] = None
    bias_dropout_fusion: Optional[bool] = None
    apply_rope_fusion: Optional[bool] = None
    persist_layer_norm: Optional[bool] = None
    gradient_accumulation_fusion: Optional[bool] = None
    recompute_granularity: Optional[str] = None  # None: off | full | selective
    recompute_method: Optional[str] = None  # full recompute: uniform | block (default uniform)
    recompute_num_layers: Optional[int] = None  # full recompute: layers per unit / block (default 1)
    use_remove_padding: bool = False  # packed (THD) sequences, no padding tokens computed

    def __post_init__(self):
        for name, allowed in (("transformer_impl", TRANSFORMER_IMPLS), ("attention_backend", ATTENTION_BACKENDS)):
            if getattr(self, name) not in allowed:
                raise KernelError(name, f"{getattr(self, name)!r} is not one of {list(allowed)}")
        if self.recompute_granularity not in (None, *RECOMPUTE_GRANULARITIES):
            raise KernelError("recompute_granularity",
                              f"{self.recompute_granularity!r}: choose one of {list(RECOMPUTE_GRANULARITIES)} or leave it empty (off)")
        if self.recompute_method not in (None, *RECOMPUTE_METHODS):
            raise KernelError("recompute_method", f"{self.recompute_method!r}: choose one of {list(RECOMPUTE_METHODS)}")
        if self.recompute_granularity != "full" and (self.recompute_method or self.recompute_num_layers):
            raise KernelError("recompute_method", "recompute_method / recompute_num_layers apply to "
                              "recompute_granularity=full only; set it to full or leave them empty")
        if self.recompute_num_layers is not None and self.recompute_num_layers < 1:
            raise KernelError("recompute_num_layers", f"{self.recompute_num_layers}: must be >= 1")


@dataclass(frozen=True)
class ResolvedKernels:
    """What the engine builds: ``layer_spec`` is 'local' or 'transformer_engine'; ``transformer_kwargs``
    go into megatron-core's TransformerConfig."""

    layer_spec: str
    transformer_kwargs: Dict[str, Any] = field(default_factory=dict)
    packed_sequences: bool = False
    # the local spec's core attention: 'sdpa' (engine.sdpa_attention) or 'dot_product' (megatron's);
    # None with the TE spec (TE's attention_backend chooses)
    core_attention: Optional[str] = None


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def apex_wgrad_kernel() -> bool:
    """Apex's fused weight-gradient kernel (what gradient_accumulation_fusion needs without TE)."""
    return _module_exists("fused_weight_gradient_mlp_cuda")


def apex_persist_layer_norm() -> bool:
    return _module_exists("apex.contrib.layer_norm")


def _platform_defaults(platform: str, te: bool) -> Dict[str, bool]:
    if platform == "cuda":
        return dict(bias_activation_fusion=True, bias_dropout_fusion=True, masked_softmax_fusion=True,
                    apply_rope_fusion=te, gradient_accumulation_fusion=te, persist_layer_norm=False)
    return {name: False for name in FUSIONS}  # CPU: no kernels; NPU: MindSpeed's flags choose its own


def resolve_kernels(cfg: KernelConfig, platform: str, *, te_available: bool, recompute_activations: bool = False,
                    loading_weights: bool = False, wgrad_kernel: Optional[bool] = None,
                    persist_ln_kernel: Optional[bool] = None) -> ResolvedKernels:
    """The layer spec and TransformerConfig kwargs for ``cfg`` on ``platform`` ('cpu'|'cuda'|'npu').

    ``te_available``: a real Transformer Engine is importable (``Platform.use_transformer_engine``);
    ``recompute_activations``: the older shorthand for full/uniform/1 recompute;
    ``loading_weights``: a checkpoint overwrites every weight after construction, so Megatron's
    random initialisation is skipped (``perform_initialization=False``).
    """
    if platform not in PLATFORMS:
        raise KernelError("transformer_impl", f"unknown platform {platform!r}; expected one of {list(PLATFORMS)}")
    # --- layer spec
    impl = cfg.transformer_impl
    if impl == "transformer_engine" and not (platform == "cuda" and te_available):
        where = "on CPU" if platform == "cpu" else ("on Ascend (MindSpeed's TE module is a stub)" if platform == "npu"
                                                   else "here: transformer_engine is not importable")
        raise KernelError("transformer_impl", f"transformer_engine cannot run {where}; set it to auto or local")
    te = impl == "transformer_engine" or (impl == "auto" and platform == "cuda" and te_available)
    spec = "transformer_engine" if te else "local"

    # --- attention backend: TE's backends need TE; the local spec runs megatron's own attention
    backend = cfg.attention_backend
    if backend in ("flash", "fused", "unfused") and not te:
        raise KernelError("attention_backend", f"{backend} is a Transformer Engine backend and this engine runs the "
                          f"local spec on {platform}; set attention_backend to auto or local "
                          "(on Ascend, MindSpeed's flash attention is megatron_training.use_flash_attn)")
    if backend in ("local", "sdpa") and te:
        raise KernelError("attention_backend", f"{backend} needs the local spec; set transformer_impl=local "
                          "or choose auto/flash/fused/unfused")
    if backend == "auto":
        # local spec: torch's fused SDPA, except on Ascend, where MindSpeed patches megatron's own
        # DotProductAttention with its kernels (a subclass would bypass them)
        backend = "auto" if te else ("local" if platform == "npu" else "sdpa")
    core_attention = None if te else ("sdpa" if backend == "sdpa" else "dot_product")
    if backend == "sdpa":
        backend = "local"  # megatron's AttnBackend for the local spec; core_attention says which module

    # --- fusions: the platform's default unless asked for; an asked-for fusion must have its kernel
    defaults = _platform_defaults(platform, te)
    fusions = {name: defaults[name] if getattr(cfg, name) is None else bool(getattr(cfg, name)) for name in FUSIONS}
    if platform == "cpu":
        on = [name for name in FUSIONS if fusions[name]]
        if on:
            raise KernelError(on[0], "fused kernels need a GPU or NPU; on CPU leave it empty or set it to false")
    if fusions["apply_rope_fusion"] and platform == "cuda" and not te:
        raise KernelError("apply_rope_fusion", "the fused RoPE kernel is Transformer Engine's, which is not in use; "
                          "set it to false (on Ascend MindSpeed's is megatron_training.use_fused_rotary_pos_emb)")
    if fusions["gradient_accumulation_fusion"] and not te and platform == "cuda":
        have = apex_wgrad_kernel() if wgrad_kernel is None else wgrad_kernel
        if not have:
            raise KernelError("gradient_accumulation_fusion", "needs Transformer Engine or Apex's "
                              "fused_weight_gradient_mlp_cuda, neither is in use; set it to false")
    if fusions["persist_layer_norm"] and platform == "cuda":
        have = apex_persist_layer_norm() if persist_ln_kernel is None else persist_ln_kernel
        if not have:
            raise KernelError("persist_layer_norm", "needs Apex's persistent layer norm (apex.contrib.layer_norm); "
                              "set it to false")
    if platform == "npu" and (fusions["apply_rope_fusion"] or fusions["masked_softmax_fusion"]):
        name = "apply_rope_fusion" if fusions["apply_rope_fusion"] else "masked_softmax_fusion"
        raise KernelError(name, "Megatron's CUDA fusion; on Ascend switch MindSpeed's kernels with "
                          "megatron_training.use_fused_rotary_pos_emb / use_flash_attn and set this to false")

    # --- activation recompute
    granularity, method, layers = cfg.recompute_granularity, cfg.recompute_method, cfg.recompute_num_layers
    if recompute_activations:
        if granularity not in (None, "full"):
            raise KernelError("recompute_granularity", f"{granularity} contradicts recompute_activations=true "
                              "(full recompute); keep one of the two")
        granularity = "full"
    recompute: Dict[str, Any] = {}
    if granularity == "full":
        recompute = dict(recompute_granularity="full", recompute_method=method or "uniform",
                         recompute_num_layers=layers or 1)
    elif granularity == "selective":
        recompute = dict(recompute_granularity="selective")

    # --- packed sequences: only where the attention kernel reads cu_seqlens (TE's THD)
    if cfg.use_remove_padding:
        if not te:
            raise KernelError("use_remove_padding", f"packed (THD) sequences need Transformer Engine attention; the "
                              f"local spec on {platform} attends over padded rows only"
                              + (" (MindSpeed's packed attention is not wired here)" if platform == "npu" else "")
                              + "; set it to false")
        if backend == "unfused":
            raise KernelError("use_remove_padding", "TE's unfused attention has no THD path; "
                              "use attention_backend auto, flash or fused")

    # attention_backend is a name here (the config room checks without megatron); the engine
    # turns it into megatron's AttnBackend (``megatron_kwargs``).
    kwargs: Dict[str, Any] = dict(fusions, attention_backend=backend, **recompute,
                                  use_cpu_initialization=platform == "cpu",
                                  perform_initialization=not loading_weights)
    return ResolvedKernels(spec, kwargs, packed_sequences=bool(cfg.use_remove_padding), core_attention=core_attention)


def megatron_kwargs(resolved: ResolvedKernels) -> Dict[str, Any]:
    """``resolved.transformer_kwargs`` with megatron-core's types (the AttnBackend enum)."""
    from megatron.core.transformer.enums import AttnBackend

    out = dict(resolved.transformer_kwargs)
    out["attention_backend"] = AttnBackend[out["attention_backend"]]
    return out


def kernel_config_from(source: Any) -> KernelConfig:
    """A KernelConfig from any object (a WorkerConfig, a dict) with fields of the same names."""
    get = source.get if isinstance(source, dict) else (lambda k, d=None: getattr(source, k, d))
    kwargs = {}
    for f in fields(KernelConfig):
        value = get(f.name, None)
        if value is not None:
            kwargs[f.name] = value
    return KernelConfig(**kwargs)
