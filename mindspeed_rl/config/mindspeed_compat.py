"""Read a MindSpeed-RL run YAML as it is published (``configs/grpo_qwen25_32b_A3.yaml``).

``translate(data)`` rewrites the composed dict in place before the typed schema sees it and
returns one note per change: a renamed key names its new key, an obsolete key says why nothing
here needs it, a reinterpreted value says what it now means. A key that is neither ours nor
MindSpeed-RL's is left alone, so the schema still refuses a typo with did-you-mean; an obsolete
key whose value asks for a behaviour this suite does not have (``kl_ctrl_type: adaptive``) is a
``Problem``, never a silent change of the run.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from mindspeed_rl.config.errors import ConfigError, Problem

_SAME = None  # value carried over unchanged


def _bf16_dtype(v: Any) -> str:
    return "bf16" if v else "fp32"


# MindSpeed-RL key -> (our key(s), value transform). Dotted paths from the top of the run config.
RENAMES: dict[str, tuple[tuple[str, ...], Optional[Callable[[Any], Any]]]] = {
    "rl_config.actor_resource.num_npus": (("rl_config.actor_resource.num_devices",), _SAME),
    "rl_config.reference_resource.num_npus": (("rl_config.reference_resource.num_devices",), _SAME),
    "rl_config.init_kl_coef": (("rl_config.kl_coef",), _SAME),
    "rl_config.kl_penalty": (("rl_config.kl_estimator",), _SAME),
    "rl_config.adv_estimator": (("rl_config.advantage_estimator",), lambda v: {"group_norm": "grpo"}.get(v, v)),
    "rl_config.mini_batch_size": (("actor_config.mini_batch_size",), _SAME),  # prompts in both
    "rl_config.epochs": (("actor_config.epochs",), _SAME),
    "rl_config.max_prompt_length": (("megatron_training.max_prompt_length",), _SAME),
    "rl_config.ref_forward_micro_batch_size": (("ref_config.micro_batch_size",), _SAME),
    "rl_config.use_integrated_worker": (("rl_config.colocate_actor_ref",), _SAME),
    "generate_config.offload_train_param": (("actor_config.offload_params",), _SAME),
    "generate_config.offload_train_grad": (("actor_config.offload_grads",), _SAME),
    "generate_config.offload_train_optimizer": (("actor_config.offload_optimizer",), _SAME),
    "megatron_training.bf16": (("actor_config.params_dtype", "ref_config.params_dtype"), _bf16_dtype),
    "megatron_training.sequence_parallel": (("actor_config.sequence_parallel",), _SAME),
    "megatron_training.use_distributed_optimizer": (("actor_config.use_distributed_optimizer",), _SAME),
    "actor_config.save": (("megatron_training.save",), _SAME),
    # Megatron's --no-X flags: true turns the fusion off, false leaves the platform's default (engine.kernels)
    "megatron_training.no_masked_softmax_fusion": (
        ("actor_config.masked_softmax_fusion", "ref_config.masked_softmax_fusion"), lambda v: False if v else None),
    "megatron_training.no_gradient_accumulation_fusion": (
        ("actor_config.gradient_accumulation_fusion", "ref_config.gradient_accumulation_fusion"),
        lambda v: False if v else None),
}

_ALWAYS = "always on here"
# MindSpeed-RL key -> (why nothing here reads it, the values that match this suite's behaviour or None: any).
OBSOLETE: dict[str, tuple[str, Optional[tuple]]] = {
    "megatron_training.model": ("selects the model section; the architecture comes from the model's config.json", None),
    "megatron_training.use_mcore_models": (f"megatron-core models are {_ALWAYS}", (True,)),
    "megatron_training.attention_softmax_in_fp32": ("megatron-core computes the attention softmax in fp32", None),
    "megatron_training.tokenizer_type": ("tokenizers are HF tokenizers", ("PretrainedFromHF", "HuggingFaceTokenizer")),
    "megatron_training.stage": ("cli/train_grpo.py runs GRPO (DAPO: its rl_config keys)", ("ray_grpo", "ray_dapo")),
    "megatron_training.attention_dropout": ("RL updates run without dropout", (0, 0.0)),
    "megatron_training.hidden_dropout": ("RL updates run without dropout", (0, 0.0)),
    "megatron_training.distributed_backend": ("the platform picks it (hccl / nccl / gloo)", None),
    "megatron_training.no_shared_storage": ("every rank writes its own checkpoint shards", None),
    "megatron_training.no_pad_to_seq_lengths": (f"rows are padded to the longest row of their micro-batch ({_ALWAYS})", (True,)),
    "megatron_training.split": ("the whole preprocessed set is the training set (validation: rl_config.val_datasets)",
                                ("100,0,0",)),
    "megatron_training.no_shuffle": ("the sampler shuffles with megatron_training.seed", (False,)),
    "megatron_training.full_shuffle_instruction_dataset": ("the sampler shuffles with megatron_training.seed", None),
    "megatron_training.reset_attention_mask": ("each row has its own attention mask", None),
    "megatron_training.dataset_additional_keys": (
        "reward functions get the gold answer ('labels') from the preprocessed dataset; other extra columns are not "
        "carried (preprocess them into the answer, or write a handler)", None),
    "actor_config.model": ("the architecture comes from the model's config.json", None),
    "actor_config.finetune": ("actor_config.load always initialises weights only", (True,)),
    "actor_config.no_load_optim": ("actor_config.load never reads an optimizer (resume: megatron_training.load)", (True,)),
    "actor_config.no_load_rng": ("actor_config.load never reads RNG state (resume: megatron_training.load)", (True,)),
    "ref_config.model": ("the architecture comes from the model's config.json", None),
    "rl_config.hccl_buffersize": ("set HCCL_BUFFSIZE in the environment (examples/grpo/ray_cluster.sh does)", None),
    "rl_config.blocking": ("the single controller runs the phases in order", None),
    "rl_config.use_remove_padding": (f"rows are padded only to their micro-batch's longest row ({_ALWAYS})", None),
    "rl_config.reward_dispatch_size": ("the reward worker scores the whole iteration at once", None),
    "rl_config.adv_dispatch_size": ("advantages are computed once per iteration by the driver", None),
    "rl_config.actor_update_dispatch_size": ("the driver shards each mini-batch over data-parallel ranks", None),
    "rl_config.kl_ctrl_type": ("the KL coefficient is fixed (rl_config.kl_coef)", ("fixed",)),
    "rl_config.shuffle_mini_batch": ("mini-batches are taken in order", (False,)),
    "rl_config.rule_reward": ("rewards are the rule-based rl_config.verifier_function", (True,)),
    "rl_config.log_max_throughput": ("e2e_tps / vllm_tps use mean lengths", (False,)),
    "generate_config.trust_remote_code": ("models are built from their config.json by this suite's mapping", None),
    "generate_config.infer_expert_parallel_size": ("dense models only", (1,)),
    "generate_config.infer_pipeline_parallel_size": ("rollout replicas are tensor-parallel only", (1,)),
    "generate_config.ascend_scheduler_config_enabled": ("vLLM-Ascend's default scheduler", (False,)),
    "generate_config.sampling_config.detokenize": ("rollouts return token ids; the driver decodes", (False,)),
    "generate_config.sampling_config.logprobs": ("rollouts always return the sampled tokens' log-probs", None),
    # keys this suite used to document and never read
    "model.name": ("logs and outputs are named by megatron_training.log_dir / save", None),
    "model.architecture": ("the weight mapping is picked by config.json's `architectures`", None),
    "rl_config.num_cpus_for_reward": ("the reward worker's processes are rl_config.verifier_num_workers", None),
}

# MindSpeed-RL's verifier names -> the registered reward with the same meaning here.
VERIFIER_NAMES = {"step": "reasoning_steps"}

# Megatron argument names in a MindSpeed-RL model YAML -> ModelConfig names (value transform).
MODEL_RENAMES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "rotary_base": ("rope_theta", float),
    "padded_vocab_size": ("vocab_size", int),
    "untie_embeddings_and_output_weights": ("tie_word_embeddings", lambda v: not v),
    "norm_epsilon": ("rms_norm_eps", float),
}
# Megatron architecture switches: the value this suite's Qwen2/Llama mapping builds.
MODEL_FIXED = {
    "use_mcore_models": True, "disable_bias_linear": True, "group_query_attention": True,
    "position_embedding_type": "rope", "normalization": "RMSNorm", "swiglu": True, "attention_softmax_in_fp32": True,
}

_MARKERS = ("megatron_training.model", "rl_config.use_integrated_worker", "rl_config.actor_resource.num_npus",
            "rl_config.adv_estimator", "rl_config.init_kl_coef")


def _get(data: dict, path: str):
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _pop(data: dict, path: str):
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return _MISSING
    return node.pop(last, _MISSING) if isinstance(node, dict) else _MISSING


def _set(data: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


class _Missing:
    pass


_MISSING = _Missing()


def is_mindspeed_rl_config(data: dict) -> bool:
    """A run config written for MindSpeed-RL (one of its own keys is present)."""
    return any(_get(data, k) is not _MISSING for k in _MARKERS)


def translate(data: dict) -> list[str]:
    """Rewrite MindSpeed-RL keys in ``data`` in place; return the notes (one per key changed).

    Raises ConfigError when a renamed key conflicts with its new key, or an obsolete key asks for a
    behaviour this suite does not have."""
    notes: list[str] = []
    problems: list[Problem] = []
    mindspeed = is_mindspeed_rl_config(data)
    _translate_model(data, notes, problems)
    for old, (new_keys, transform) in RENAMES.items():
        value = _pop(data, old)
        if value is _MISSING:
            continue
        new_value = transform(value) if transform else value
        for new in new_keys:
            given = _get(data, new)
            if given is not _MISSING and given != new_value:
                problems.append(Problem(old, value, f"renamed to {new}, which is also set (to {given!r})",
                                        f"keep only {new}"))
                continue
            _set(data, new, new_value)
        shown = f"{new_value!r}" if new_value != value else ""
        notes.append(f"{old} is renamed: now {' and '.join(new_keys)}" + (f" (= {shown})" if shown else ""))
    for key, (why, accepted) in OBSOLETE.items():
        value = _pop(data, key)
        if value is _MISSING:
            continue
        if accepted is not None and value not in accepted:
            problems.append(Problem(key, value, f"not supported here: {why}",
                                    f"remove it (the behaviour here is {key.rsplit('.', 1)[1]}={accepted[0]!r})"))
            continue
        notes.append(f"{key} is not needed here and is ignored: {why}")
    layer_list = [(s, _get(data, f"{s}.num_layer_list")) for s in ("actor_config", "ref_config")]
    for section, value in layer_list:
        if isinstance(value, str):
            try:
                _set(data, f"{section}.num_layer_list", [int(x) for x in value.split(",") if x.strip()])
            except ValueError:
                problems.append(Problem(f"{section}.num_layer_list", value, "expected comma-separated layer counts",
                                        "write it as 16,17,16,15 or [16, 17, 16, 15]"))
    _translate_verifiers(data, notes)
    _inherit_colocated_ref_layout(data, notes if mindspeed else [])
    if mindspeed:
        _reinterpret_seq_length(data, notes)
    if problems:
        raise ConfigError(problems, "MindSpeed-RL config")
    return notes


_LAYOUT_KEYS = ("tensor_model_parallel_size", "pipeline_model_parallel_size", "num_layer_list")


def _inherit_colocated_ref_layout(data: dict, notes: list[str]) -> None:
    """A colocated reference lives in the actor's processes, so it has the actor's TP x PP (and stage
    split): keys the ``ref_config`` leaves out are taken from ``actor_config`` (MindSpeed-RL's
    integrated worker does the same)."""
    colocated = _get(data, "rl_config.colocate_actor_ref")
    if colocated is False or not isinstance(data.get("actor_config"), dict):
        return
    actor, ref = data["actor_config"], data.setdefault("ref_config", {})
    if ref is None:
        ref = data["ref_config"] = {}
    taken = [k for k in _LAYOUT_KEYS if k in actor and k not in ref]
    for key in taken:
        ref[key] = actor[key]
    if taken:
        notes.append(f"ref_config is colocated with the actor: {', '.join(taken)} taken from actor_config "
                     f"({', '.join(f'{k}={actor[k]!r}' for k in taken)})")


def _translate_verifiers(data: dict, notes: list[str]) -> None:
    names = _get(data, "rl_config.verifier_function")
    if not isinstance(names, list):
        return
    for i, name in enumerate(names):
        if name in VERIFIER_NAMES:
            names[i] = VERIFIER_NAMES[name]
            notes.append(f"rl_config.verifier_function[{i}]={name!r} is MindSpeed-RL's name: now {names[i]!r}")


def _reinterpret_seq_length(data: dict, notes: list[str]) -> None:
    """MindSpeed-RL's ``seq_length`` is Megatron's padding length (its GRPO recipes set it to the prompt
    length and pad nothing to it); here it is the longest prompt + response the engine handles."""
    mt = data.get("megatron_training") or {}
    sampling = (data.get("generate_config") or {}).get("sampling_config") or {}
    prompt, new = mt.get("max_prompt_length"), sampling.get("max_tokens")
    seq = mt.get("seq_length")
    if isinstance(prompt, int) and isinstance(new, int) and isinstance(seq, int) and seq < prompt + new:
        mt["seq_length"] = prompt + new
        notes.append(f"megatron_training.seq_length={seq} is MindSpeed-RL's Megatron padding length; here it is the "
                     f"longest prompt + response: now {prompt + new} (max_prompt_length {prompt} + max_tokens {new})")


def _translate_model(data: dict, notes: list[str], problems: list[Problem]) -> None:
    """A MindSpeed-RL model YAML nests the architecture under its name (``qwen25_32b: {...}``, picked
    by ``megatron_training.model``) and uses Megatron's argument names."""
    model = data.get("model")
    if not isinstance(model, dict):
        return
    wanted = _get(data, "megatron_training.model")
    nested = [k for k, v in model.items() if isinstance(v, dict)]
    if not nested:
        return
    name = wanted if isinstance(wanted, str) and wanted in model else (nested[0] if len(nested) == 1 else None)
    if name is None:
        problems.append(Problem("megatron_training.model", None if wanted is _MISSING else wanted,
                                f"the model section holds several models {nested}", f"set it to one of {nested}"))
        return
    flat = {k: v for k, v in model.items() if not isinstance(v, dict)}
    for key, value in model[name].items():
        if key in MODEL_FIXED:
            if value != MODEL_FIXED[key]:
                problems.append(Problem(f"model.{name}.{key}", value, "this suite builds Qwen2/Llama-style models",
                                        f"use {MODEL_FIXED[key]!r}"))
            continue
        if key in MODEL_RENAMES:
            ours, transform = MODEL_RENAMES[key]
            flat[ours] = transform(value)
            continue
        flat[key] = value
    data["model"] = flat
    notes.append(f"model section: MindSpeed-RL model YAML '{name}' read with Megatron names "
                 f"({', '.join(f'{k}->{v[0]}' for k, v in MODEL_RENAMES.items() if k in model[name])})")
