"""The Megatron engine's own settings. The config room builds them from the run config
(``mindspeed_rl.config.components.megatron_engine_config``); the engine never reads the run schema."""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from mindspeed_rl.engine.kernels import KernelConfig

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LR_DECAY_STYLES = ("constant", "linear", "cosine")
OUTPUTS = ("log_probs", "values")


@dataclass
class MegatronEngineConfig:
    """Everything ``MegatronEngine`` needs besides the model's HF config and the checkpoint."""

    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    num_layer_list: Optional[Sequence[int]] = None
    micro_batch_size: int = 1
    # Dynamic batch size: > 0 cuts micro-batches by a budget of padded tokens (rows x longest row)
    # instead of micro_batch_size rows, for the update and for the log-prob passes respectively.
    max_tokens_per_micro_batch: int = 0
    log_prob_max_tokens_per_micro_batch: int = 0
    params_dtype: str = "fp32"  # fp32 | bf16 | fp16
    seed: int = 1234
    forward_only: bool = False  # reference: no DDP, no optimizer
    # "log_probs" (policy, reference) or "values": a critic, the output layer replaced by a
    # [hidden, 1] head (engine.value_head); infer_batch and the loss get values instead of log-probs
    output: str = "log_probs"
    make_vocab_size_divisible_by: int = 128
    # Layer spec, fusions, attention backend, recompute, packed sequences (engine.kernels):
    # None fields take the platform's defaults.
    kernels: KernelConfig = field(default_factory=KernelConfig)
    use_te: Optional[bool] = None  # deprecated: kernels.transformer_impl (True: transformer_engine, False: local)
    recompute_activations: bool = False  # shorthand for kernels.recompute_granularity=full
    sequence_parallel: bool = False
    # Log-probs (and a loss that asks for them) are of softmax(logits / logit_temperature): the distribution the
    # rollout sampled from, so the importance ratio and KL compare like with like (as verl does).
    logit_temperature: float = 1.0
    # optimizer
    lr: float = 1e-6
    min_lr: float = 0.0
    lr_decay_style: str = "constant"
    lr_warmup_steps: int = 0
    lr_decay_steps: int = 0  # total optimizer steps of the run (0: one step, i.e. no decay)
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    clip_grad: float = 1.0
    use_distributed_optimizer: bool = False
    transformer_overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.kernels, dict):
            self.kernels = KernelConfig(**self.kernels)
        if self.use_te is not None:
            impl = "transformer_engine" if self.use_te else "local"
            warnings.warn(f"MegatronEngineConfig.use_te is deprecated: use kernels=KernelConfig(transformer_impl={impl!r})",
                          DeprecationWarning, stacklevel=3)
            if self.kernels.transformer_impl not in ("auto", impl):
                raise ValueError(f"use_te={self.use_te}: contradicts kernels.transformer_impl="
                                 f"{self.kernels.transformer_impl!r}; drop use_te")
            self.kernels = dataclasses.replace(self.kernels, transformer_impl=impl)
        if self.params_dtype not in DTYPES:
            raise ValueError(f"params_dtype={self.params_dtype!r}: choose one of {list(DTYPES)}")
        if self.lr_decay_style not in LR_DECAY_STYLES:
            raise ValueError(f"lr_decay_style={self.lr_decay_style!r}: choose one of {list(LR_DECAY_STYLES)}")
        if not self.logit_temperature > 0:
            raise ValueError(f"logit_temperature={self.logit_temperature}: must be > 0 (use 1.0 for greedy rollouts)")
        if self.output not in OUTPUTS:
            raise ValueError(f"output={self.output!r}: choose one of {list(OUTPUTS)}")
        if self.output == "values" and self.sequence_parallel:
            raise ValueError("sequence_parallel=True: not supported for a critic (the value head reads the full "
                             "hidden state); set it to false")
        if self.micro_batch_size < 1:
            raise ValueError(f"micro_batch_size={self.micro_batch_size}: must be >= 1")
        if self.max_tokens_per_micro_batch < 0 or self.log_prob_max_tokens_per_micro_batch < 0:
            raise ValueError("max_tokens_per_micro_batch and log_prob_max_tokens_per_micro_batch must be >= 0 "
                             "(0: fixed micro_batch_size)")
        if self.lr_warmup_steps < 0 or self.lr_decay_steps < 0:
            raise ValueError("lr_warmup_steps and lr_decay_steps must be >= 0")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.params_dtype]
