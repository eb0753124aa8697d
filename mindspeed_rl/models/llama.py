"""Llama (``LlamaForCausalLM``): the generic decoder (no linear biases)."""
from __future__ import annotations

from mindspeed_rl.models.bridge import GPTBridge
from mindspeed_rl.models.errors import UnsupportedModelError


class LlamaBridge(GPTBridge):
    architectures = ("LlamaForCausalLM",)

    def _check_supported(self, c: dict) -> None:
        super()._check_supported(c)
        if c.get("attention_bias"):
            # HF attention_bias also puts a bias on o_proj, which megatron's add_qkv_bias does not.
            raise UnsupportedModelError("attention_bias=true (o_proj bias) is not supported for Llama")
