"""A fake ``vllm`` package implementing the subset of vLLM 0.11's API the vLLM backend uses.

Generation is delegated to the HF rollout engine, so outputs are real model samples; every call
(sleep / wake_up / load_weights / reset_prefix_cache / generate) is recorded for assertions.
Keyword names are checked against vLLM 0.11's, so a misspelt argument fails here as it would there.
"""
from __future__ import annotations

import sys
import types
from types import SimpleNamespace

from mindspeed_rl.engine.rollout.base import SamplingParams as OurSamplingParams

# vllm.SamplingParams fields (vLLM 0.11).
SAMPLING_FIELDS = {
    "n", "best_of", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature",
    "top_p", "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens",
    "min_tokens", "logprobs", "prompt_logprobs", "detokenize", "skip_special_tokens",
    "spaces_between_special_tokens", "logits_processors", "include_stop_str_in_output",
    "truncate_prompt_tokens", "output_kind", "structured_outputs", "logit_bias",
    "allowed_token_ids", "extra_args", "bad_words",
}
# vllm.LLM / EngineArgs keywords used by the backend (vLLM 0.11).
LLM_FIELDS = {
    "model", "tokenizer", "skip_tokenizer_init", "tensor_parallel_size", "dtype", "seed",
    "gpu_memory_utilization", "enable_sleep_mode", "distributed_executor_backend",
    "max_model_len", "enable_prefix_caching", "load_format", "logprobs_mode", "data_parallel_size",
    "max_num_seqs", "max_num_batched_tokens", "enforce_eager", "trust_remote_code",
}
LOGPROBS_MODES = {"raw_logprobs", "raw_logits", "processed_logprobs", "processed_logits"}


class FakeSamplingParams:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"vllm.SamplingParams got unexpected keywords {sorted(unknown)}")
        if kwargs.get("top_k", -1) == 0 or kwargs.get("top_k", -1) < -1:
            raise ValueError("top_k must be -1 (disable), or at least 1")
        self.__dict__.update(kwargs)


def tokens_prompt(prompt_token_ids):  # vllm.inputs.TokensPrompt is a TypedDict
    return {"prompt_token_ids": prompt_token_ids}


class _Model:
    def __init__(self, llm):
        self._llm = llm

    def load_weights(self, weights):
        weights = list(weights)
        self._llm.load_calls.append([n for n, _ in weights])
        self._llm.hf.update_weights(weights)


class FakeLLM:
    def __init__(self, hf_engine=None, **kwargs):
        unknown = set(kwargs) - LLM_FIELDS
        if unknown:
            raise TypeError(f"vllm.LLM got unexpected keywords {sorted(unknown)}")
        if "logprobs_mode" in kwargs and kwargs["logprobs_mode"] not in LOGPROBS_MODES:
            raise ValueError(kwargs["logprobs_mode"])
        self.kwargs = kwargs
        self._hf = hf_engine
        self.seen_prompts: list[list[int]] = []
        self.sleep_calls, self.wake_calls, self.load_calls = [], [], []
        self.prefix_resets = 0
        runner = SimpleNamespace(model=_Model(self))
        self.llm_engine = SimpleNamespace(
            model_executor=SimpleNamespace(driver_worker=SimpleNamespace(worker=SimpleNamespace(model_runner=runner)))
        )

    @property
    def hf(self):
        if self._hf is None:
            # built by the backend from a model directory (as inside a trainer's worker)
            from mindspeed_rl.engine.rollout.hf_engine import HFRolloutEngine

            self._hf = HFRolloutEngine(model_path=self.kwargs["model"], dtype="float32")
        return self._hf

    def generate(self, prompts, sampling_params, use_tqdm=True):
        if not isinstance(sampling_params, list):
            sampling_params = [sampling_params] * len(prompts)
        outs = []
        for prompt, sp in zip(prompts, sampling_params):
            assert sp.ignore_eos is True and sp.detokenize is False
            ids = prompt["prompt_token_ids"]
            self.seen_prompts.append(list(ids))
            ours = OurSamplingParams(
                n=sp.n, temperature=sp.temperature, top_p=sp.top_p, top_k=sp.top_k, min_p=sp.min_p,
                max_tokens=sp.max_tokens, stop_token_ids=sp.stop_token_ids, seed=sp.seed,
                logprobs=sp.logprobs is not None,
            )
            samples = self.hf.generate([ids], ours)[0]
            outs.append(SimpleNamespace(
                prompt_token_ids=ids,
                outputs=[
                    SimpleNamespace(
                        index=o.sample_index, token_ids=tuple(o.token_ids), finish_reason=o.finish_reason,
                        logprobs=None if o.logprobs is None else [
                            {t: SimpleNamespace(logprob=lp, rank=1, decoded_token=None)}
                            for t, lp in zip(o.token_ids, o.logprobs)
                        ],
                    )
                    for o in reversed(samples)  # vLLM gives no ordering guarantee here
                ],
            ))
        return outs

    def sleep(self, level=1):
        self.sleep_calls.append(level)

    def wake_up(self, tags=None):
        self.wake_calls.append(tags)

    def reset_prefix_cache(self):
        self.prefix_resets += 1
        return True


def install() -> types.ModuleType:
    """Put the fake ``vllm`` and ``vllm.inputs`` modules into sys.modules; returns ``vllm``."""
    vllm = types.ModuleType("vllm")
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = tokens_prompt
    vllm.inputs = inputs
    vllm.SamplingParams = FakeSamplingParams
    vllm.LLM = FakeLLM
    sys.modules["vllm"] = vllm
    sys.modules["vllm.inputs"] = inputs
    return vllm


def uninstall() -> None:
    sys.modules.pop("vllm", None)
    sys.modules.pop("vllm.inputs", None)
