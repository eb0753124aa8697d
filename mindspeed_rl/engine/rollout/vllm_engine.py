"""vLLM rollout backend: the offline ``vllm.LLM`` engine fed with token ids.

Coded against vLLM 0.11.x (V1 engine) public API; the calls used are:

- ``vllm.LLM(model=..., skip_tokenizer_init=True, tensor_parallel_size=..., dtype=...,
  gpu_memory_utilization=..., seed=..., enable_sleep_mode=True,
  distributed_executor_backend='external_launcher', enable_prefix_caching=...,
  logprobs_mode=..., load_format=...)``
- ``llm.generate([vllm.inputs.TokensPrompt(prompt_token_ids=...)], [vllm.SamplingParams(...)],
  use_tqdm=False)`` -> ``RequestOutput.outputs[j]`` with ``.index``, ``.token_ids``,
  ``.logprobs`` (per position: ``{token_id: Logprob(logprob=...)}``) and ``.finish_reason``
- ``llm.sleep(level=1|2)``, ``llm.wake_up(tags=['weights'] | ['kv_cache'] | None)``,
  ``llm.reset_prefix_cache()``
- weights: ``llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
  .load_weights(weights)`` when the engine runs in this process (external_launcher, or
  ``VLLM_ENABLE_V1_MULTIPROCESSING=0``), else ``llm.collective_rpc(fn, args=(weights,))``.

SPMD-in-trainer layout (``distributed_executor_backend='external_launcher'``): every trainer rank
builds one ``LLM`` with the inference TP size over the already initialised torch world; vLLM
groups consecutive ranks into TP groups and treats the leading dimension as external data
parallelism, which is exactly :mod:`parallel_plan`'s layout. Each replica generates its
contiguous share of the prompts; results are all-gathered back in prompt order. All ranks must
pass the same engine ``seed`` (TP peers must sample identically).

Log-probs: vLLM by default reports log-probs of the RAW logits (before temperature). We request
``logprobs_mode='processed_logprobs'`` (vLLM >= 0.10.2), i.e. after temperature scaling. That
equals this project's convention (``base`` module docstring: temperature-scaled, untruncated)
whenever top_k/top_p/min_p are off, the usual GRPO setting; with truncation on, vLLM's
processed log-probs are renormalised over the kept tokens and ``rollout/logprob_diff`` will show
the gap. The trainer's recomputed log-probs remain the ones used for the importance ratio.
"""
from __future__ import annotations

import gc
import hashlib
import os
from typing import Callable, Iterable, Sequence

from mindspeed_rl.engine.rollout.base import RolloutEngine, RolloutOutput, SamplingParams
from mindspeed_rl.engine.rollout.buckets import DEFAULT_BUCKET_BYTES, iter_weight_buckets
from mindspeed_rl.engine.rollout.parallel_plan import RolloutParallelPlan, shard_bounds
from mindspeed_rl.utils.imports import require

VLLM_VERSION_CODED_AGAINST = "0.11"


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


def _load_weights_on_worker(worker, weights):
    """Runs inside each vLLM worker process (collective_rpc path)."""
    worker.model_runner.model.load_weights(weights=weights)


def _all_gather_objects(obj, group=None) -> list:
    import torch.distributed as dist

    out = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


class VLLMRolloutEngine(RolloutEngine):
    """One vLLM replica member per trainer rank (SPMD), or a single standalone engine.

    Args:
        model_path: local HF checkpoint dir (config + tokenizer-free; with ``load_format='dummy'``
            the weights are not read: the first ``update_weights`` provides them).
        tensor_parallel_size: inference TP (``plan.infer_tp`` when a plan is given).
        plan / rank: data-parallel layout (``parallel_plan.plan_rollout_parallel``) and this
            process's global rank; without a plan the engine is a single replica.
        sleep_level: 1 keeps a host copy of the weights while asleep; 2 discards them (use when
            every wake-up is followed by ``update_weights``; it saves host memory and a copy).
        bucket_bytes: weight-sync bucket size (bounds memory held by pending tensors).
        gather_fn: ``obj -> list of every rank's obj`` (default: torch.distributed
            all_gather_object over ``gather_group``).
        llm: an already built ``vllm.LLM``-like object (tests inject a fake here).
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
        max_model_len: int | None = None,
        seed: int = 0,
        enable_sleep_mode: bool = True,
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
            raise ValueError(f"generate_config.sleep_level must be 1 or 2, got {sleep_level}")
        if plan is not None and plan.infer_tp != tensor_parallel_size:
            tensor_parallel_size = plan.infer_tp
        self.plan = plan
        if plan is not None:
            if rank is None:
                import torch.distributed as dist

                rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self.rank = rank
            self.dp_size, self.dp_rank = plan.dp_size, plan.dp_rank(rank)
        else:
            self.rank, self.dp_size, self.dp_rank = rank or 0, 1, 0
        self.sleep_level = sleep_level
        self.bucket_bytes = bucket_bytes
        self._gather = gather_fn or (lambda obj: _all_gather_objects(obj, gather_group))
        self._vllm = require("vllm", purpose="the vLLM rollout backend (generate_config.backend=vllm)") \
            if llm is None else None
        if llm is None:
            if model_path is None:
                raise ValueError("VLLMRolloutEngine needs model_path= (generate_config.model_path)")
            if distributed_executor_backend == "external_launcher":
                # The engine core must live in this process so that weights can be loaded
                # directly into the model (and so that vLLM uses the trainer's torch world).
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
            if distributed_executor_backend is not None:
                kwargs["distributed_executor_backend"] = distributed_executor_backend
            if max_model_len is not None:
                kwargs["max_model_len"] = max_model_len
            kwargs.update(llm_kwargs)
            llm = self._vllm.LLM(**kwargs)
        self._llm = llm
        self._asleep_tags: set[str] = set()
        self._weights_discarded = False
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
        self._check_usable()
        prompts = [list(map(int, p)) for p in prompt_token_ids]
        for i, p in enumerate(prompts):
            if not p:
                raise ValueError(f"prompt {i} is empty: every prompt needs at least one token")
        start, end = shard_bounds(len(prompts), self.dp_size, self.dp_rank)
        local: list[list[RolloutOutput]] = []
        if end > start:
            sampling_cls, tokens_prompt = self._api()
            requests = [tokens_prompt(prompt_token_ids=p) for p in prompts[start:end]]
            params = [
                to_vllm_sampling_params(sampling, sampling_cls, request_seed(sampling.seed, i))
                for i in range(start, end)
            ]
            outputs = self._llm.generate(requests, params, use_tqdm=False)
            if len(outputs) != len(requests):
                raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts")
            local = [
                convert_request_output(o, start + k, sampling.logprobs) for k, o in enumerate(outputs)
            ]
        if self.dp_size == 1:
            return local
        # TP peers hold identical results: take each replica's leader's share, in replica order.
        gathered = self._gather(local)
        results = [out for r in range(self.dp_size) for out in gathered[self.plan.tp_groups[r][0]]]
        if len(results) != len(prompts):
            raise RuntimeError(f"rollout gathered {len(results)} results for {len(prompts)} prompts")
        return results

    # ------------------------------------------------------------------ weights
    def update_weights(self, named_tensors: Iterable[tuple[str, "object"]]) -> int:
        """Stream HF-named full tensors into vLLM bucket by bucket; vLLM's ``load_weights`` does
        the TP slicing and the fusing (qkv, gate_up) itself. Resets the prefix cache, whose
        blocks were computed with the previous weights."""
        self._check_open()
        if "weights" in self._asleep_tags:
            raise RuntimeError("update_weights while the weights are asleep: call wake_up(tags=['weights']) first")
        model = self._in_process_model()
        count = 0
        for bucket in iter_weight_buckets(named_tensors, self.bucket_bytes):
            if model is not None:
                model.load_weights(weights=bucket)
            else:
                self._llm.collective_rpc(_load_weights_on_worker, args=(bucket,))
            count += len(bucket)
        if count:
            self._weights_discarded = False
            self._llm.reset_prefix_cache()
        return count

    def _in_process_model(self):
        try:
            return self._llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
        except AttributeError:
            return None

    # ------------------------------------------------------------------ memory
    def sleep(self) -> None:
        self._check_open()
        if self._asleep_tags == {"weights", "kv_cache"}:
            return
        self._llm.sleep(level=self.sleep_level)
        self._asleep_tags = {"weights", "kv_cache"}
        if self.sleep_level == 2:
            self._weights_discarded = True

    def wake_up(self, tags: Sequence[str] | None = None) -> None:
        self._check_open()
        wanted = set(tags) if tags else {"weights", "kv_cache"}
        unknown = wanted - {"weights", "kv_cache"}
        if unknown:
            raise ValueError(f"wake_up tags must be 'weights' and/or 'kv_cache', got {sorted(unknown)}")
        todo = wanted & self._asleep_tags
        if not todo:
            return
        # Always explicit tags: waking an already-awake pool would map its memory twice.
        self._llm.wake_up(tags=sorted(todo))
        self._asleep_tags -= todo

    @property
    def is_sleeping(self) -> bool:
        return bool(self._asleep_tags)

    def shutdown(self) -> None:
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
                "sleep(level=2) discarded the vLLM weights: call update_weights() after "
                "wake_up(tags=['weights']) before generate()"
            )
