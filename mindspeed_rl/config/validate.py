"""Cross-field rules a cluster user can break. Every broken rule is reported at once, naming the
key, its value, the rule and a fix, before any worker starts."""
from __future__ import annotations

from mindspeed_rl.config.errors import ConfigError, Problem
from mindspeed_rl.config.rules import check_training_rules
from mindspeed_rl.config.schema import GRPOConfig, WorkerConfig


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _check_parallel_layout(name: str, w: WorkerConfig, num_devices: int, cfg: GRPOConfig, out: list[Problem]) -> None:
    m = cfg.model
    tp, pp = w.tensor_model_parallel_size, w.pipeline_model_parallel_size
    if tp < 1 or pp < 1:
        out.append(Problem(f"{name}.tensor_model_parallel_size", tp, "TP and PP must be >= 1", "set them to 1 or more"))
        return
    if num_devices % (tp * pp):
        out.append(Problem(
            f"{name}.tensor_model_parallel_size",
            tp,
            f"devices ({num_devices}) must equal TP x PP x DP; TP x PP = {tp * pp} does not divide them",
            f"pick TP x PP among the divisors of {num_devices}: {_divisors(num_devices)}",
        ))
    if m.num_attention_heads % tp:
        out.append(Problem(
            f"{name}.tensor_model_parallel_size", tp,
            f"model.num_attention_heads ({m.num_attention_heads}) must be divisible by TP",
            f"use TP in {[d for d in _divisors(m.num_attention_heads) if m.num_query_groups % d == 0]}",
        ))
    if m.num_query_groups % tp:
        out.append(Problem(
            f"{name}.tensor_model_parallel_size", tp,
            f"model.num_query_groups ({m.num_query_groups}) must be divisible by TP",
            f"use TP in {_divisors(m.num_query_groups)}",
        ))
    if w.num_layer_list:
        layers = list(w.num_layer_list)
        if len(layers) != pp or sum(layers) != m.num_layers or min(layers) < 1:
            out.append(Problem(
                f"{name}.num_layer_list", layers,
                f"needs {pp} positive entries (one per pipeline stage) summing to model.num_layers ({m.num_layers})",
                f"e.g. {[m.num_layers // pp] * (pp - 1) + [m.num_layers - (m.num_layers // pp) * (pp - 1)]}",
            ))
    elif m.num_layers % pp:
        out.append(Problem(
            f"{name}.pipeline_model_parallel_size", pp,
            f"model.num_layers ({m.num_layers}) must be divisible by PP",
            f"use PP in {_divisors(m.num_layers)} or set {name}.num_layer_list",
        ))
    if w.sequence_parallel and tp == 1:
        out.append(Problem(f"{name}.sequence_parallel", True, "sequence parallelism needs TP > 1", "set it to false"))
    if w.micro_batch_size < 1:
        out.append(Problem(f"{name}.micro_batch_size", w.micro_batch_size, "must be >= 1", "set it to 1 or more"))
    longest_row = cfg.megatron_training.max_prompt_length + cfg.generate_config.sampling_config.max_tokens
    for key in ("max_tokens_per_micro_batch", "log_prob_max_tokens_per_micro_batch"):
        budget = getattr(w, key)
        if budget < 0 or 0 < budget < longest_row:
            out.append(Problem(
                f"{name}.{key}", budget,
                f"a token budget must hold the longest possible row, max_prompt_length + max_tokens = {longest_row} "
                "(a row is never split across micro-batches)",
                f"set it to 0 (off) or at least {longest_row}; a few times that keeps micro-batches efficient",
            ))


def validate(cfg: GRPOConfig) -> GRPOConfig:
    """Raise ConfigError listing every broken rule; return cfg unchanged when valid."""
    out: list[Problem] = []
    rl, gen, mt, m = cfg.rl_config, cfg.generate_config, cfg.megatron_training, cfg.model
    actor, ref = cfg.actor_config, cfg.ref_config
    n = rl.n_samples_per_prompt

    if n < 2:
        out.append(Problem("rl_config.n_samples_per_prompt", n, "GRPO needs at least 2 samples per prompt (a group)", "set it to 2 or more (R1-Zero recipes use 8-16)"))
    if rl.actor_resource.num_devices < 1:
        out.append(Problem("rl_config.actor_resource.num_devices", rl.actor_resource.num_devices, "must be >= 1", "set it to the number of actor devices"))
        raise ConfigError(out)

    _check_parallel_layout("actor_config", actor, rl.actor_resource.num_devices, cfg, out)
    if rl.colocate_actor_ref and (ref.tensor_model_parallel_size, ref.pipeline_model_parallel_size) != (
            actor.tensor_model_parallel_size, actor.pipeline_model_parallel_size):
        out.append(Problem(
            "ref_config.tensor_model_parallel_size", ref.tensor_model_parallel_size,
            "a reference colocated with the actor shares its process and so its TP x PP "
            f"(actor: TP{actor.tensor_model_parallel_size} PP{actor.pipeline_model_parallel_size})",
            "set ref_config TP/PP equal to actor_config's, or rl_config.colocate_actor_ref=false with a reference_resource",
        ))
    ref_devices = cfg.ref_num_devices
    _check_parallel_layout("ref_config", ref, ref_devices, cfg, out)

    # Batch arithmetic: experiences per optimizer step must split evenly over DP x micro-batch.
    if not out:
        dp = cfg.actor_data_parallel_size
        mbs = actor.micro_batch_size
        experiences = mt.global_batch_size * n
        if experiences % (dp * mbs):
            out.append(Problem(
                "megatron_training.global_batch_size", mt.global_batch_size,
                f"global_batch_size x n_samples_per_prompt ({experiences}) must be divisible by actor DP ({dp}) x micro_batch_size ({mbs})",
                f"make global_batch_size x {n} a multiple of {dp * mbs}",
            ))
        mini = actor.mini_batch_size or mt.global_batch_size
        if mt.global_batch_size % mini:
            out.append(Problem("actor_config.mini_batch_size", actor.mini_batch_size,
                               f"must divide megatron_training.global_batch_size ({mt.global_batch_size})",
                               f"use one of {_divisors(mt.global_batch_size)}"))
        elif (mini * n) % (dp * mbs):
            out.append(Problem("actor_config.mini_batch_size", actor.mini_batch_size,
                               f"mini_batch_size x n_samples_per_prompt ({mini * n}) must be divisible by DP ({dp}) x micro_batch_size ({mbs})",
                               f"make mini_batch_size x {n} a multiple of {dp * mbs}"))
        ref_dp = cfg.ref_data_parallel_size
        if experiences % (ref_dp * ref.micro_batch_size):
            out.append(Problem("ref_config.micro_batch_size", ref.micro_batch_size,
                               f"global_batch_size x n_samples_per_prompt ({experiences}) must be divisible by reference DP ({ref_dp}) x micro_batch_size",
                               f"make {experiences} a multiple of {ref_dp} x micro_batch_size"))
    if mt.global_batch_size < 1:
        out.append(Problem("megatron_training.global_batch_size", mt.global_batch_size, "must be >= 1", "set it to the prompts per iteration"))

    # Inference layout: replicas carved out of the actor's devices.
    itp = gen.infer_tensor_parallel_size
    if itp < 1 or rl.actor_resource.num_devices % itp:
        out.append(Problem("generate_config.infer_tensor_parallel_size", itp,
                           f"inference TP x PP must divide the actor's devices ({rl.actor_resource.num_devices}) so replicas tile them",
                           f"use one of {_divisors(rl.actor_resource.num_devices)}"))
    elif itp >= 1:
        ttp = actor.tensor_model_parallel_size
        if ttp % itp and itp % ttp:
            out.append(Problem("generate_config.infer_tensor_parallel_size", itp,
                               f"inference TP must divide or be a multiple of the actor's TP ({ttp}) for in-memory resharding",
                               f"use a divisor or multiple of {ttp}, e.g. {ttp}"))
        if m.num_attention_heads % itp or m.num_query_groups % itp:
            out.append(Problem("generate_config.infer_tensor_parallel_size", itp,
                               f"heads ({m.num_attention_heads}) and query groups ({m.num_query_groups}) must be divisible by inference TP",
                               f"use one of {[d for d in _divisors(m.num_query_groups) if m.num_attention_heads % d == 0]}"))

    # Lengths.
    max_tokens = gen.sampling_config.max_tokens
    total = mt.max_prompt_length + max_tokens
    if total > m.max_position_embeddings:
        out.append(Problem("generate_config.sampling_config.max_tokens", max_tokens,
                           f"max_prompt_length ({mt.max_prompt_length}) + max_tokens ({max_tokens}) = {total} exceeds model.max_position_embeddings ({m.max_position_embeddings})",
                           f"lower max_tokens to {max(m.max_position_embeddings - mt.max_prompt_length, 0)} or shorten prompts"))
    if total > mt.seq_length:
        out.append(Problem("megatron_training.seq_length", mt.seq_length,
                           f"must hold max_prompt_length + max_tokens ({total})", f"set it to {total} or more"))
    if total > gen.max_model_len:
        out.append(Problem("generate_config.max_model_len", gen.max_model_len,
                           f"must hold max_prompt_length + max_tokens ({total})", f"set it to {total} or more"))

    # Sampling and rewards.
    s = gen.sampling_config
    if s.temperature < 0:
        out.append(Problem("generate_config.sampling_config.temperature", s.temperature, "must be >= 0", "use 1.0 for GRPO rollouts"))
    if not 0 < s.top_p <= 1:
        out.append(Problem("generate_config.sampling_config.top_p", s.top_p, "must be in (0, 1]", "use 1.0 to disable"))
    if not 0 <= s.min_p <= 1:
        out.append(Problem("generate_config.sampling_config.min_p", s.min_p, "must be in [0, 1]", "use 0 to disable"))
    if len(rl.verifier_function) != len(rl.verifier_weight):
        out.append(Problem("rl_config.verifier_weight", rl.verifier_weight,
                           f"needs one weight per verifier_function ({len(rl.verifier_function)})",
                           f"give {len(rl.verifier_function)} weights"))
    else:
        _check_reward_names(rl.verifier_function, out)
    _check_validation(rl, out)
    check_training_rules(cfg, out)
    _check_dapo(rl, s, out)
    _check_algorithm_names(rl, out)
    from mindspeed_rl.config.ppo_rules import check_ppo

    check_ppo(cfg, out, _check_parallel_layout)
    if not out:  # the components' own rules, on a config that passed the run's
        from mindspeed_rl.config.components import check_components

        check_components(cfg, out)
    if out:
        raise ConfigError(out)
    return cfg


def _check_validation(rl, out: list[Problem]) -> None:
    if (rl.test_freq > 0 or rl.test_before_train) and not rl.val_datasets:
        out.append(Problem("rl_config.val_datasets", [], "validation is on (test_freq / test_before_train) but no held-out set is given",
                           "add e.g. [{dataset: {name: math500, path: data/math500_test.jsonl}, n: 1}] or set test_freq=0"))
    # each entry is an evaluation config, checked by the trainer's preflight (check_validation_sets):
    # the config room does not import the evaluation room, which builds on it


def _check_dapo(rl, sampling, out: list[Problem]) -> None:
    """Dynamic sampling's metric must exist; the overlong buffer must fit in the length limit."""
    if rl.filter_groups_enable and rl.filter_groups_metric != "score" and rl.filter_groups_metric not in rl.verifier_function:
        out.append(Problem("rl_config.filter_groups_metric", rl.filter_groups_metric,
                           "must be 'score' or one of rl_config.verifier_function",
                           f"use one of {['score'] + list(rl.verifier_function)}"))
    if rl.overlong_buffer_enable:
        if not 0 < rl.overlong_buffer_len <= sampling.max_tokens:
            out.append(Problem("rl_config.overlong_buffer_len", rl.overlong_buffer_len,
                               f"must be in [1, generate_config.sampling_config.max_tokens ({sampling.max_tokens})]",
                               f"use e.g. {max(sampling.max_tokens // 5, 1)} (DAPO: 4096 of 20480)"))
        if rl.overlong_penalty_factor < 0:
            out.append(Problem("rl_config.overlong_penalty_factor", rl.overlong_penalty_factor,
                               "must be >= 0 (it is subtracted)", "use 1.0 as DAPO does"))


def _check_algorithm_names(rl, out: list[Problem]) -> None:
    """Every algorithm the run selects by name must be registered (a user's too, once imported)."""
    import difflib

    from mindspeed_rl.algorithms import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, POLICY_LOSSES

    for registry, key in ((ADVANTAGE_ESTIMATORS, "advantage_estimator"), (POLICY_LOSSES, "policy_loss"),
                          (KL_ESTIMATORS, "kl_estimator")):
        name = getattr(rl, key)
        if name not in registry:
            close = difflib.get_close_matches(str(name), registry.names(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            out.append(Problem(f"rl_config.{key}", name, f"no {registry.kind} is registered under this name",
                               f"{hint}use one of {registry.names()}, or register yours in mindspeed_rl.algorithms"))


def _check_reward_names(names: list, out: list[Problem]) -> None:
    try:
        from mindspeed_rl.rewards import available_rewards  # the scorer's registry, when present
    except ImportError:
        return
    known = set(available_rewards())
    for i, name in enumerate(names):
        if name not in known and not _importable_reward(name):
            out.append(Problem(f"rl_config.verifier_function[{i}]", name, "unknown reward function",
                               f"use one of {sorted(known)} or register your own"))


def _importable_reward(name: str) -> bool:
    """A ``package.module:function`` spec the scorer can import (allowed without registering)."""
    if ":" not in name:
        return False
    from mindspeed_rl.rewards.registry import get_reward

    try:
        get_reward(name)
    except KeyError:
        return False
    return True


def check_resources(cfg: GRPOConfig, available: dict[str, float], resource: str) -> None:
    """Requested devices must exist in the cluster (``available``: Ray's cluster resources)."""
    rl = cfg.rl_config
    wanted = rl.actor_resource.num_devices + (0 if rl.colocate_actor_ref else rl.reference_resource.num_devices)
    if cfg.critic_config is not None:
        wanted += rl.critic_resource.num_devices
    have = int(available.get(resource, 0))
    if wanted > have:
        key = "rl_config.actor_resource.num_devices" if rl.colocate_actor_ref else "rl_config.reference_resource.num_devices"
        raise ConfigError([Problem(
            key, rl.actor_resource.num_devices if rl.colocate_actor_ref else rl.reference_resource.num_devices,
            f"the run needs {wanted} {resource} but the cluster has {have}",
            f"start more nodes, or lower the requested devices to {have} in total",
        )])


def check_inputs_exist(cfg: GRPOConfig) -> None:
    """The files a run reads must exist before any worker starts (each missing one named by key)."""
    from pathlib import Path

    mt = cfg.megatron_training
    problems: list[Problem] = []

    def need(key: str, value: str, what: str, probe: str = "", fix: str = "") -> None:
        if not value:
            problems.append(Problem(key, value, f"must name {what}", fix or f"set {key}"))
        elif not Path(value + probe).exists():
            problems.append(Problem(key, value, f"{what} not found ({value + probe})", fix or "check the path"))

    need("megatron_training.tokenizer_name_or_path", mt.tokenizer_name_or_path, "a local tokenizer directory",
         fix="point it at the HF model directory (the hub is not contacted)")
    need("megatron_training.data_path", mt.data_path, "a preprocessed dataset prefix", "_meta.json",
         fix="run cli/preprocess_data.py and pass the output_prefix it printed")
    hf_dir = cfg.model.hf_config_dir or mt.tokenizer_name_or_path
    if hf_dir and Path(hf_dir).is_dir() and not (Path(hf_dir) / "config.json").exists():
        problems.append(Problem("model.hf_config_dir", hf_dir, "no config.json there", "point it at the HF model directory"))
    if cfg.actor_config.load:
        need("actor_config.load", cfg.actor_config.load, "a converted Megatron checkpoint",
             fix="convert with tools/convert/convert_ckpt.py hf2mcore (see examples/ckpt)")
    if cfg.ref_config.load:
        need("ref_config.load", cfg.ref_config.load, "a converted Megatron checkpoint",
             fix="convert with tools/convert/convert_ckpt.py hf2mcore (see examples/ckpt)")
    if cfg.critic_config is not None and cfg.critic_config.load:
        need("critic_config.load", cfg.critic_config.load, "a converted Megatron checkpoint",
             fix="convert with tools/convert/convert_ckpt.py hf2mcore at the critic's TP/PP (see examples/ckpt)")
    if mt.load:
        need("megatron_training.load", mt.load, "a run checkpoint directory", "/latest_checkpointed_iteration.txt")
    if problems:
        raise ConfigError(problems)
