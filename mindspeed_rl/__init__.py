"""mindspeed-rl: GRPO training for LLMs with rule-based rewards on Megatron-core, vLLM and Ray.

Importing the package is light on purpose: no Megatron, Ray, vLLM or torch_npu import happens
here, so configs, data tools and the scorer work on any machine.
"""

__version__ = "0.1.0"
