"""The config room builds each component's own config from the run config.

The engine and the loss have their own typed configs (``engine.MegatronEngineConfig``,
``algorithms.PolicyLossConfig``) and never read the run schema. This module is the one place
that maps run keys onto them. The mapping is by name: every component field whose name is a key
of the run section is taken from it as is; the few that differ are listed below (``LOSS_RENAMED``,
``LOSS_DERIVED``, ``ENGINE_DERIVED``, ``ENGINE_ONLY``), and a field in none of these raises at once, so a key cannot
fall through a gap unnoticed. ``validate()`` builds both, so a bad value is refused before launch.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Dict

from mindspeed_rl.config.errors import ConfigError, Problem

# ---- the policy loss (rl_config) --------------------------------------------------------------
# PolicyLossConfig field -> rl_config key (MindSpeed-RL / verl names in the run config)
LOSS_RENAMED = {"kl_loss_coef": "kl_coef", "kl_loss_type": "kl_estimator"}
# PolicyLossConfig field -> (the run keys it comes from, how)
LOSS_DERIVED: Dict[str, tuple] = {
    # the KL goes into the loss unless it is put in the reward or has no weight (DAPO, Open-Reasoner-Zero:
    # then the loss needs no reference log-probs and the trainer skips the reference pass)
    "use_kl_loss": (("rl_config.use_kl_in_reward", "rl_config.kl_coef"),
                    lambda cfg: not cfg.rl_config.use_kl_in_reward and cfg.rl_config.kl_coef != 0),
    # seq-mean-token-sum-norm's constant L: the longest response the rollout can return
    "loss_norm_length": (("generate_config.sampling_config.max_tokens",),
                         lambda cfg: cfg.generate_config.sampling_config.max_tokens),
}

# ---- the Megatron engine (actor_config / ref_config) ------------------------------------------
KERNEL_KEYS = ("transformer_impl", "attention_backend", "bias_activation_fusion", "masked_softmax_fusion",
               "bias_dropout_fusion", "apply_rope_fusion", "persist_layer_norm", "gradient_accumulation_fusion",
               "recompute_granularity", "recompute_method", "recompute_num_layers", "use_remove_padding")


def _kernel_config(worker):
    from mindspeed_rl.engine.kernels import KernelConfig

    return KernelConfig(**{name: getattr(worker, name) for name in KERNEL_KEYS})


ENGINE_DERIVED: Dict[str, tuple] = {
    "seed": (("megatron_training.seed",), lambda cfg, worker, role, steps: cfg.megatron_training.seed),
    "forward_only": ((), lambda cfg, worker, role, steps: role == "ref"),
    # the critic's model ends in a value head (engine.value_head)
    "output": ((), lambda cfg, worker, role, steps: "values" if role == "critic" else "log_probs"),
    "make_vocab_size_divisible_by": (("model.make_vocab_size_divisible_by",),
                                     lambda cfg, worker, role, steps: cfg.model.make_vocab_size_divisible_by),
    # log-probs of the distribution the rollout sampled from (greedy rollouts: the plain one)
    "logit_temperature": (("generate_config.sampling_config.temperature",),
                          lambda cfg, worker, role, steps: cfg.generate_config.sampling_config.temperature or 1.0),
    "num_layer_list": (("num_layer_list",),
                       lambda cfg, worker, role, steps: list(worker.num_layer_list) if worker.num_layer_list else None),
    # warmup is lr_warmup_fraction of the run's optimizer steps; the decay spans all of them
    "lr_warmup_steps": (("lr_warmup_fraction",),
                        lambda cfg, worker, role, steps: int(round(worker.lr_warmup_fraction * max(steps, 1)))),
    "lr_decay_steps": ((), lambda cfg, worker, role, steps: max(steps, 1)),
    # the kernel keys of the worker section, by name (engine.kernels.KernelConfig)
    "kernels": (KERNEL_KEYS,
                lambda cfg, worker, role, steps: _kernel_config(worker)),
}
# engine settings that have no run key (the engine's defaults apply)
ENGINE_ONLY = ("use_te", "transformer_overrides")
ROLES = {"actor": "actor_config", "ref": "ref_config", "critic": "critic_config"}


def total_optimizer_steps(cfg) -> int:
    """Optimizer steps of the whole run: iterations x mini-batches per iteration x epochs."""
    mt, actor = cfg.megatron_training, cfg.actor_config
    mini = actor.mini_batch_size or mt.global_batch_size
    return mt.train_iters * max(mt.global_batch_size // max(mini, 1), 1) * actor.epochs


def total_critic_steps(cfg) -> int:
    """The critic's optimizer steps of the whole run (it trains every iteration, warm-up included)."""
    mt, critic = cfg.megatron_training, cfg.critic_config
    mini = critic.mini_batch_size or mt.global_batch_size
    return mt.train_iters * max(mt.global_batch_size // max(mini, 1), 1) * critic.epochs


def value_loss_config(cfg):
    """``algorithms.ValueLossConfig`` from ``critic_config``."""
    from mindspeed_rl.algorithms import ValueLossConfig

    try:
        return ValueLossConfig(cliprange_value=cfg.critic_config.cliprange_value)
    except ValueError as exc:
        raise ConfigError([Problem("critic_config.cliprange_value", cfg.critic_config.cliprange_value, str(exc),
                                   "use 0.5 (verl) or 0.2")]) from None


def policy_loss_config(cfg):
    """``algorithms.PolicyLossConfig`` from the run config's ``rl_config`` loss keys."""
    from mindspeed_rl.algorithms import LossConfigError, PolicyLossConfig

    rl = cfg.rl_config
    kwargs: Dict[str, Any] = {}
    for f in fields(PolicyLossConfig):
        if f.name in LOSS_DERIVED:
            kwargs[f.name] = LOSS_DERIVED[f.name][1](cfg)
        else:
            kwargs[f.name] = getattr(rl, _loss_key(f.name))
    try:
        return PolicyLossConfig(**kwargs)
    except LossConfigError as exc:
        key = LOSS_DERIVED[exc.field][0][0] if exc.field in LOSS_DERIVED else f"rl_config.{_loss_key(exc.field)}"
        raise ConfigError([Problem(key, exc.value, "invalid for the policy loss", exc.fix)]) from None


def _loss_key(name: str) -> str:
    from mindspeed_rl.config.schema import RLConfig

    key = LOSS_RENAMED.get(name, name)
    if key not in {f.name for f in fields(RLConfig)}:
        raise RuntimeError(f"PolicyLossConfig.{name} has no rl_config key: add `{key}` to RLConfig "
                           "(config/schema.py), or map it in config/components.py")
    return key


def megatron_engine_config(cfg, role: str, *, total_steps: int = 0):
    """``engine.MegatronEngineConfig`` of ``role`` ("actor": trains; "ref": forward only)."""
    from mindspeed_rl.engine.config import MegatronEngineConfig

    if role not in ROLES:
        raise ValueError(f"role {role!r}: choose one of {list(ROLES)}")
    worker = getattr(cfg, ROLES[role])
    if worker is None:
        raise ConfigError([Problem(ROLES[role], None, f"the {role} engine needs a {ROLES[role]} section",
                                   f"add {ROLES[role]} to the run config")])
    keys = {f.name for f in fields(worker)}
    kwargs: Dict[str, Any] = {}
    try:
        for f in fields(MegatronEngineConfig):
            if f.name in ENGINE_ONLY:
                continue
            if f.name in ENGINE_DERIVED:
                kwargs[f.name] = ENGINE_DERIVED[f.name][1](cfg, worker, role, total_steps)
            elif f.name in keys:
                kwargs[f.name] = getattr(worker, f.name)
            else:
                raise RuntimeError(f"MegatronEngineConfig.{f.name} has no {ROLES[role]} key: add it to WorkerConfig "
                                   "(config/schema.py), or map it in config/components.py")
        return MegatronEngineConfig(**kwargs)
    except ValueError as exc:
        raise _engine_problem(exc, worker, role, keys) from None


def _engine_problem(exc: ValueError, worker, role: str, keys) -> ConfigError:
    """The engine's messages start with the field: "params_dtype='int8': ..."; kernel errors carry it."""
    field = getattr(exc, "field", None) or str(exc).split("=")[0].split(" ")[0]
    key = f"{ROLES[role]}.{field}" if field in keys else ROLES[role]
    return ConfigError([Problem(key, getattr(worker, field, ""), str(exc), "fix the value named above")])


def engine_kernels(cfg, role: str):
    """``engine.kernels.ResolvedKernels`` of ``role`` on this process's platform (the driver's; each
    rank resolves again on its own when it builds its model)."""
    from mindspeed_rl.engine.kernels import KernelError, resolve_kernels
    from mindspeed_rl.platform import current_platform

    engine = megatron_engine_config(cfg, role)
    platform = current_platform()
    worker = getattr(cfg, ROLES[role])
    try:
        return resolve_kernels(engine.kernels, platform.name, te_available=platform.use_transformer_engine(),
                               recompute_activations=engine.recompute_activations)
    except KernelError as exc:
        raise _engine_problem(exc, worker, role, {f.name for f in fields(worker)}) from None


def check_components(cfg, out: list) -> None:
    """Build every component config once, so that their own rules run before launch."""
    builders: tuple[Callable[[], Any], ...] = (
        lambda: policy_loss_config(cfg),
        lambda: megatron_engine_config(cfg, "actor", total_steps=total_optimizer_steps(cfg)),
        lambda: megatron_engine_config(cfg, "ref"),
        lambda: engine_kernels(cfg, "actor"),
        lambda: engine_kernels(cfg, "ref"),
    )
    if getattr(cfg, "critic_config", None) is not None:
        builders += (lambda: megatron_engine_config(cfg, "critic", total_steps=total_critic_steps(cfg)),
                     lambda: engine_kernels(cfg, "critic"), lambda: value_loss_config(cfg))
    for build in builders:
        try:
            build()
        except ConfigError as exc:
            out.extend(p for p in exc.problems if p.key not in {q.key for q in out})
