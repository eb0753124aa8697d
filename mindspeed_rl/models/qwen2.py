"""Qwen2 / Qwen2.5 (``Qwen2ForCausalLM``): a Llama-style decoder with biases on q/k/v."""
from __future__ import annotations

from mindspeed_rl.models.bridge import GPTBridge
from mindspeed_rl.models.errors import UnsupportedModelError


class Qwen2Bridge(GPTBridge):
    architectures = ("Qwen2ForCausalLM",)

    @property
    def add_qkv_bias(self) -> bool:
        return True  # Qwen2 always has q/k/v biases and no other linear bias

    def _check_supported(self, c: dict) -> None:
        super()._check_supported(c)
        if c.get("use_sliding_window"):
            raise UnsupportedModelError(
                "use_sliding_window=true in config.json is not supported (megatron-core attention here is full "
                "causal); Qwen2.5 checkpoints ship with it false"
            )
