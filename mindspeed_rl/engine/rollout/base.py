"""The rollout-engine interface: token ids in, token ids + sampled log-probs out.

Every backend (HF transformers on CPU / small GPUs, vLLM on clusters) implements
:class:`RolloutEngine`. Prompts are given as token ids and responses come back as token ids:
there is never a text round trip, so the ids the trainer scores and trains on are exactly the
ids the engine conditioned on and produced.

Log-prob convention (the one the GRPO importance ratio needs, as in verl): for each sampled
token, ``log softmax(logits / temperature)[token]`` computed in fp32 over the FULL vocabulary,
i.e. temperature-scaled but WITHOUT top-k / top-p / min-p truncation or renormalisation. The
training engine recomputes the same quantity (logits divided by the same temperature), so the
two agree up to numerics. With ``temperature == 0`` (greedy) the reported log-probs are those of
the unscaled distribution (temperature treated as 1).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample responses. Field names and meanings follow vLLM's ``SamplingParams``."""

    n: int = 1
    """Number of independent responses per prompt (GRPO group size)."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax) decoding."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of most likely tokens whose probability mass
    reaches ``top_p`` (after temperature). 1.0 disables it."""
    top_k: int = -1
    """Keep only the ``top_k`` most likely tokens. -1 (or 0) disables it."""
    min_p: float = 0.0
    """Drop tokens whose probability is below ``min_p`` times the most likely token's
    probability (after temperature). 0.0 disables it."""
    max_tokens: int = 256
    """Maximum number of response tokens; reaching it gives finish_reason 'length'."""
    stop_token_ids: tuple[int, ...] = ()
    """Generation of a sample ends when it emits one of these ids (typically the tokenizer's
    EOS / end-of-turn ids). The stop token is INCLUDED in the response (the policy must learn to
    emit it) and the finish reason is 'stop'. Only these ids stop generation: backends do not add
    an EOS of their own, so pass the EOS ids here."""
    seed: int | None = None
    """Seed for this call's sampling; the same prompts, parameters and seed repeat exactly on the
    same backend and device. None draws from the process-wide RNG (torch.manual_seed)."""
    logprobs: bool = True
    """Return the sampled tokens' log-probs (see the module docstring for which distribution)."""

    def __post_init__(self) -> None:
        # Normalise list -> tuple so the dataclass stays hashable/frozen-friendly.
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < -1:
            raise ValueError(f"SamplingParams.top_k must be -1 (off), 0 (off) or > 0, got {self.top_k}")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"SamplingParams.min_p must be in [0, 1], got {self.min_p}")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be >= 1, got {self.max_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class RolloutOutput:
    """One sampled response."""

    prompt_index: int
    """Index of the prompt in the ``prompt_token_ids`` list given to ``generate``."""
    token_ids: list[int]
    """Response token ids (no padding; includes the stop token when finish_reason is 'stop')."""
    logprobs: list[float] | None = None
    """Per response token: log-prob of the sampled token (module docstring), or None if not asked."""
    finish_reason: FinishReason = "length"
    """'stop' when a stop token was emitted, 'length' when max_tokens was reached."""
    sample_index: int = 0
    """Which of the n samples of its prompt this is (0..n-1)."""
    extra: dict = field(default_factory=dict)


class RolloutEngine(abc.ABC):
    """A generation engine that the trainer drives between actor updates.

    Life cycle in a hybrid (colocated) job: ``wake_up()`` -> ``update_weights(...)`` ->
    ``generate(...)`` -> ``sleep()``; ``shutdown()`` at the end.
    """

    @abc.abstractmethod
    def generate(
        self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingParams
    ) -> list[list[RolloutOutput]]:
        """Sample ``sampling.n`` responses per prompt; result[i] holds prompt i's n samples."""

    @abc.abstractmethod
    def update_weights(self, named_tensors: Iterable[tuple[str, "object"]]) -> int:
        """Load HF-named full (unsharded) tensors into the engine's model, streaming.

        Returns the number of tensors loaded. Unknown names or wrong shapes raise with the
        offending name. The HF backend accepts partial sets; the vLLM backend reloads the whole
        model in place and needs every parameter in one call (it raises otherwise).
        """

    @abc.abstractmethod
    def sleep(self) -> None:
        """Release accelerator memory (weights to host, KV cache freed) until ``wake_up``."""

    @abc.abstractmethod
    def wake_up(self, tags: Sequence[str] | None = None) -> None:
        """Bring back what ``sleep`` released. ``tags`` (vLLM: 'weights', 'kv_cache') allows
        waking the weights first, loading new weights, then allocating the KV cache (avoids OOM
        on wake-up); None wakes everything."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Free everything; the engine cannot be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False


def build_rollout_engine(backend: str = "hf", plan=None, rank: int | None = None, **kwargs) -> RolloutEngine:
    """Build a rollout engine by backend name.

    ``backend='hf'``: :class:`~mindspeed_rl.engine.rollout.hf_engine.HFRolloutEngine` (kwargs:
    ``model`` or ``model_path``, ``dtype``, ``device``, ``max_batch_size``).
    ``backend='vllm'``: :class:`~mindspeed_rl.engine.rollout.vllm_engine.VLLMRolloutEngine`
    (kwargs: ``model_path``, ``tensor_parallel_size``, ``gpu_memory_utilization``, ...).

    With a rollout ``plan`` (``parallel_plan.plan_rollout_parallel``) and this process's ``rank``,
    every backend has the same contract: each rank is given ALL prompts, its replica generates
    its share, and every rank returns all results in prompt order.
    """
    name = backend.lower()
    if name in ("hf", "transformers", "huggingface"):
        from mindspeed_rl.engine.rollout.hf_engine import HFRolloutEngine

        engine = HFRolloutEngine(**kwargs)
        if plan is None:
            return engine
        from mindspeed_rl.engine.rollout.replicas import ReplicatedRollout

        return ReplicatedRollout(engine, plan, rank)
    if name == "vllm":
        from mindspeed_rl.engine.rollout.vllm_engine import VLLMRolloutEngine

        return VLLMRolloutEngine(plan=plan, rank=rank, **kwargs)
    raise ValueError(
        f"unknown rollout backend {backend!r} (generate_config.backend): use 'hf' or 'vllm'"
    )
