"""Engine-level settings, and their construction from the run config (``actor_config``/``ref_config``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LR_DECAY_STYLES = ("constant", "linear", "cosine")


@dataclass
class EngineConfig:
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
    make_vocab_size_divisible_by: int = 128
    use_te: Optional[bool] = None  # None: Transformer Engine spec when importable and not on CPU
    recompute_activations: bool = False
    sequence_parallel: bool = False
    compute_entropy: bool = True  # entropy metric in update() (needed anyway when entropy_coeff != 0)
    # Log-probs (and the GRPO loss) are of softmax(logits / logit_temperature): the distribution the
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
        if self.params_dtype not in DTYPES:
            raise ValueError(f"params_dtype={self.params_dtype!r}: choose one of {list(DTYPES)}")
        if self.lr_decay_style not in LR_DECAY_STYLES:
            raise ValueError(f"lr_decay_style={self.lr_decay_style!r}: choose one of {list(LR_DECAY_STYLES)}")
        if not self.logit_temperature > 0:
            raise ValueError(f"logit_temperature={self.logit_temperature}: must be > 0 (use 1.0 for greedy rollouts)")
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

    @classmethod
    def from_worker_config(cls, worker: Any, *, seed: int = 1234, total_steps: int = 0,
                           forward_only: bool = False, **overrides: Any) -> "EngineConfig":
        """From ``mindspeed_rl.config.schema.WorkerConfig`` (``actor_config`` or ``ref_config``).

        ``total_steps`` is the number of optimizer steps of the whole run (iterations x
        mini-batches x epochs); warmup is ``lr_warmup_fraction`` of it.
        """
        total = max(int(total_steps), 1)
        kwargs = dict(
            tensor_model_parallel_size=worker.tensor_model_parallel_size,
            pipeline_model_parallel_size=worker.pipeline_model_parallel_size,
            num_layer_list=list(worker.num_layer_list) if worker.num_layer_list else None,
            micro_batch_size=worker.micro_batch_size,
            max_tokens_per_micro_batch=worker.max_tokens_per_micro_batch,
            log_prob_max_tokens_per_micro_batch=worker.log_prob_max_tokens_per_micro_batch,
            params_dtype=worker.params_dtype,
            seed=seed,
            forward_only=forward_only,
            recompute_activations=worker.recompute_activations,
            sequence_parallel=worker.sequence_parallel,
            lr=worker.lr,
            min_lr=worker.min_lr,
            lr_decay_style=worker.lr_decay_style,
            lr_warmup_steps=int(round(worker.lr_warmup_fraction * total)),
            lr_decay_steps=total,
            weight_decay=worker.weight_decay,
            adam_beta1=worker.adam_beta1,
            adam_beta2=worker.adam_beta2,
            adam_eps=worker.adam_eps,
            clip_grad=worker.clip_grad,
            use_distributed_optimizer=worker.use_distributed_optimizer,
        )
        kwargs.update(overrides)
        return cls(**kwargs)


def policy_loss_config_from_rl(rl_config: Any, loss_norm_length: Optional[int] = None):
    """``algorithms.PolicyLossConfig`` from ``rl_config`` (KL as a loss term unless use_kl_in_reward)."""
    from mindspeed_rl.algorithms import PolicyLossConfig

    return PolicyLossConfig(
        clip_ratio=rl_config.clip_ratio,
        clip_ratio_low=rl_config.clip_ratio_low,
        clip_ratio_high=rl_config.clip_ratio_high,
        clip_ratio_c=rl_config.clip_ratio_c,
        loss_agg_mode=rl_config.loss_agg_mode,
        loss_norm_length=loss_norm_length,
        use_kl_loss=not rl_config.use_kl_in_reward,
        kl_loss_coef=rl_config.kl_coef,
        kl_loss_type=rl_config.kl_estimator,
        entropy_coeff=rl_config.entropy_coeff,
    )
