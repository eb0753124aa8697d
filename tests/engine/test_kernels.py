"""engine.kernels: per-platform defaults, explicit choices, and the refusals that name the key;
the run config reaches the resolver (validate refuses what the platform cannot run)."""
import warnings

import pytest

from mindspeed_rl.engine.kernels import FUSIONS, KernelConfig, KernelError, resolve_kernels


def _resolve(platform, te=False, **kw):
    return resolve_kernels(KernelConfig(**kw), platform, te_available=te, wgrad_kernel=False, persist_ln_kernel=False)


def test_cpu_defaults_local_spec_everything_off_cpu_init():
    r = _resolve("cpu")
    assert r.layer_spec == "local" and not r.packed_sequences
    k = r.transformer_kwargs
    assert all(k[f] is False for f in FUSIONS) and k["attention_backend"] == "local"
    assert k["use_cpu_initialization"] is True and k["perform_initialization"] is True
    assert "recompute_granularity" not in k


def test_cuda_defaults_with_and_without_transformer_engine():
    te = _resolve("cuda", te=True).transformer_kwargs
    assert _resolve("cuda", te=True).layer_spec == "transformer_engine" and te["attention_backend"] == "auto"
    assert all(te[f] for f in FUSIONS if f != "persist_layer_norm") and te["persist_layer_norm"] is False
    assert te["use_cpu_initialization"] is False  # weights are created on the GPU
    plain = _resolve("cuda", te=False)
    assert plain.layer_spec == "local" and plain.transformer_kwargs["attention_backend"] == "local"
    k = plain.transformer_kwargs
    assert k["bias_activation_fusion"] and k["bias_dropout_fusion"]  # megatron's jit fusions need no TE
    assert not k["apply_rope_fusion"] and not k["gradient_accumulation_fusion"]


def test_npu_defaults_are_mindspeeds():
    r = _resolve("npu", te=True)  # MindSpeed's stub transformer_engine is never TE
    assert r.layer_spec == "local" and not any(r.transformer_kwargs[f] for f in FUSIONS)
    assert r.transformer_kwargs["use_cpu_initialization"] is False


def test_explicit_choices_win_over_defaults():
    k = _resolve("cuda", te=True, bias_activation_fusion=False, attention_backend="flash",
                 recompute_granularity="full", recompute_method="block", recompute_num_layers=2).transformer_kwargs
    assert k["bias_activation_fusion"] is False and k["attention_backend"] == "flash"
    assert (k["recompute_granularity"], k["recompute_method"], k["recompute_num_layers"]) == ("full", "block", 2)
    assert _resolve("cuda", te=True, transformer_impl="local").layer_spec == "local"
    sel = _resolve("cpu", recompute_granularity="selective").transformer_kwargs
    assert sel["recompute_granularity"] == "selective" and "recompute_method" not in sel


def test_recompute_activations_shorthand_and_loading_weights():
    r = resolve_kernels(KernelConfig(), "cpu", te_available=False, recompute_activations=True, loading_weights=True)
    k = r.transformer_kwargs
    assert (k["recompute_granularity"], k["recompute_method"], k["recompute_num_layers"]) == ("full", "uniform", 1)
    assert k["perform_initialization"] is False  # the checkpoint overwrites every weight
    with pytest.raises(KernelError, match="recompute_granularity"):
        resolve_kernels(KernelConfig(recompute_granularity="selective"), "cpu", te_available=False,
                        recompute_activations=True)


@pytest.mark.parametrize("platform,te,kw,field", [
    ("cpu", False, dict(transformer_impl="transformer_engine"), "transformer_impl"),
    ("npu", True, dict(transformer_impl="transformer_engine"), "transformer_impl"),
    ("cuda", False, dict(transformer_impl="transformer_engine"), "transformer_impl"),
    ("cpu", False, dict(attention_backend="flash"), "attention_backend"),
    ("cuda", False, dict(attention_backend="fused"), "attention_backend"),
    ("cuda", True, dict(attention_backend="local"), "attention_backend"),
    ("cpu", False, dict(bias_activation_fusion=True), "bias_activation_fusion"),
    ("cpu", False, dict(gradient_accumulation_fusion=True), "gradient_accumulation_fusion"),
    ("cuda", False, dict(gradient_accumulation_fusion=True), "gradient_accumulation_fusion"),
    ("cuda", False, dict(apply_rope_fusion=True), "apply_rope_fusion"),
    ("cuda", True, dict(persist_layer_norm=True), "persist_layer_norm"),
    ("npu", False, dict(apply_rope_fusion=True), "apply_rope_fusion"),
    ("cpu", False, dict(use_remove_padding=True), "use_remove_padding"),
    ("npu", False, dict(use_remove_padding=True), "use_remove_padding"),
    ("cuda", False, dict(use_remove_padding=True), "use_remove_padding"),
    ("cuda", True, dict(use_remove_padding=True, attention_backend="unfused"), "use_remove_padding"),
])
def test_unsupported_combinations_are_refused_naming_the_field(platform, te, kw, field):
    with pytest.raises(KernelError, match=f"^{field}: ") as err:
        _resolve(platform, te=te, **kw)
    assert err.value.field == field


def test_packing_with_te_attention_and_wgrad_fusion_with_apex():
    assert _resolve("cuda", te=True, use_remove_padding=True).packed_sequences
    with_apex = resolve_kernels(KernelConfig(gradient_accumulation_fusion=True), "cuda", te_available=False,
                                wgrad_kernel=True)
    assert with_apex.transformer_kwargs["gradient_accumulation_fusion"] is True


@pytest.mark.parametrize("kw,field", [(dict(transformer_impl="te"), "transformer_impl"),
                                      (dict(attention_backend="xformers"), "attention_backend"),
                                      (dict(recompute_granularity="some"), "recompute_granularity"),
                                      (dict(recompute_method="block"), "recompute_method"),
                                      (dict(recompute_granularity="full", recompute_num_layers=0), "recompute_num_layers")])
def test_bad_values_are_refused(kw, field):
    with pytest.raises(KernelError, match=f"^{field}: "):
        KernelConfig(**kw)


def test_use_te_is_a_deprecated_alias():
    from mindspeed_rl.engine import MegatronEngineConfig

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cfg = MegatronEngineConfig(use_te=False)
    assert cfg.kernels.transformer_impl == "local" and any("deprecated" in str(w.message) for w in seen)
    with pytest.raises(ValueError, match="use_te"):
        MegatronEngineConfig(use_te=True, kernels=KernelConfig(transformer_impl="local"))


@pytest.mark.parametrize("override,key", [
    ("actor_config.transformer_impl=transformer_engine", "actor_config.transformer_impl"),
    ("ref_config.attention_backend=flash", "ref_config.attention_backend"),
    ("actor_config.use_remove_padding=true", "actor_config.use_remove_padding"),
    ("actor_config.gradient_accumulation_fusion=true", "actor_config.gradient_accumulation_fusion"),
    ("actor_config.recompute_method=block", "actor_config.recompute_method"),
])
def test_validate_refuses_what_this_platform_cannot_run(override, key, monkeypatch):
    from mindspeed_rl.config import load_config
    from mindspeed_rl.config.errors import ConfigError
    from mindspeed_rl.platform import detect

    monkeypatch.setenv("MINDSPEED_RL_PLATFORM", "cpu")
    detect.reset_platform()
    try:
        with pytest.raises(ConfigError) as err:
            load_config("grpo_tiny_cpu", [override])
    finally:
        detect.reset_platform()
    assert key in {p.key for p in err.value.problems}, err.value.problems


def test_run_keys_reach_the_engine_config():
    from mindspeed_rl.config import load_config
    from mindspeed_rl.config.components import megatron_engine_config

    cfg = load_config("grpo_tiny_cpu", ["actor_config.recompute_granularity=full", "actor_config.recompute_num_layers=2",
                                        "ref_config.masked_softmax_fusion=false"])
    actor, ref = megatron_engine_config(cfg, "actor"), megatron_engine_config(cfg, "ref")
    assert actor.kernels.recompute_granularity == "full" and actor.kernels.recompute_num_layers == 2
    assert ref.kernels.masked_softmax_fusion is False and ref.kernels.recompute_granularity is None
