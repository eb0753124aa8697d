"""The losses a training engine minimises, as plain functions of one micro-batch.

The engine knows nothing of GRPO or SFT. It cuts the batch into mini- and micro-batches, counts
the global normalisers of each mini-batch once (``LossNormalizers``, over all DP ranks), runs the
forward pass, hands a loss function the micro-batch's log-probs (``LossInputs``), multiplies what
comes back by its gradient-averaging factor (the pipeline schedule's ``1/num_microbatches`` and
DDP's ``1/dp_size`` undone) and reduces the metrics exactly over micro-batches and DP ranks.

A loss is a ``Loss``: the function plus the few facts the engine must know before the forward
pass (the metric names, the batch keys, whether entropy is needed). ``LOSSES`` registers the
builders by name (``grpo``, ``sft``, and ``value``: the critic's, in ``value_loss.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Tuple

import torch

from .aggregation import LossNormalizers
from .config import PolicyLossConfig
from .grpo_loss import compute_grpo_loss
from .metrics import WeightedMetric
from .registry import Registry

GRPO_METRICS = ("pg_loss", "pg_clipfrac", "pg_clipfrac_lower", "ppo_kl", "kl_loss", "entropy")
SFT_METRICS = ("sft_loss",)
SMOOTHED_SFT_METRICS = ("sft_loss", "sft_nll")


@dataclass(frozen=True)
class LossInputs:
    """What the engine gives a loss for one micro-batch (all ``[rows, response_len]``)."""

    log_probs: Optional[torch.Tensor]  # current policy log-probs of the response tokens, with grad
    entropy: Optional[torch.Tensor]  # per-token entropy (with grad) when the loss asked for it
    batch: Mapping[str, torch.Tensor]  # the micro-batch's rows (any device)
    normalizers: LossNormalizers  # global denominators of the whole mini-batch, all DP ranks
    on_policy: bool  # one mini-batch, one epoch: the data comes from the current weights
    mean_log_prob: Optional[torch.Tensor] = None  # mean over the true vocab of log p (label smoothing)
    values: Optional[torch.Tensor] = None  # a critic's per-token values, with grad (Loss.output="values")

    def get(self, key: str) -> Optional[torch.Tensor]:
        """``batch[key]`` on the model outputs' device, or None when the batch has no such key."""
        value = self.batch.get(key)
        like = self.log_probs if self.log_probs is not None else self.values
        return None if value is None else value.to(like.device)


LossResult = Tuple[torch.Tensor, Dict[str, WeightedMetric]]


@dataclass(frozen=True)
class Loss:
    """A loss function and what the engine must know about it before the forward pass.

    ``fn(inputs) -> (loss, metrics)``: ``loss`` is this micro-batch's share of the mini-batch
    loss (divide by ``inputs.normalizers``, never by local counts), so that the shares of all
    micro-batches and DP ranks sum to the mini-batch loss; ``metrics`` are ``WeightedMetric``s.
    """

    fn: Callable[[LossInputs], LossResult]
    metrics: Tuple[str, ...]  # every name fn may report, the same on every rank (one all-reduce)
    required_keys: Tuple[str, ...] = ()  # batch keys fn reads besides the engine's own
    with_entropy: bool = False  # the engine computes per-token entropy for fn
    logit_temperature: bool = True  # log-probs of softmax(logits / T), the rollout's distribution
    norm_length: Optional[int] = None  # seq-mean-token-sum-norm's L (None: the widest response)
    with_mean_log_prob: bool = False  # the engine computes the mean log-prob over the vocab for fn
    mask_key: str = "response_mask"  # the [rows, response_len] mask the global normalisers count
    output: str = "log_probs"  # what fn reads: log-probs (policy) or "values" (a critic engine's head)

    def __call__(self, inputs: LossInputs) -> LossResult:
        return self.fn(inputs)


def grpo_policy_loss(config: PolicyLossConfig, inputs: LossInputs) -> LossResult:
    """GRPO / PPO actor loss of one micro-batch: policy loss + KL loss - entropy bonus.

    On-policy steps use the current log-probs (detached) as the old ones: ratio exactly 1."""
    return compute_grpo_loss(
        inputs.log_probs, inputs.get("advantages"), inputs.get("response_mask"), config,
        old_log_prob=None if inputs.on_policy else inputs.get("old_log_probs"),
        ref_log_prob=inputs.get("ref_log_probs"), entropy=inputs.entropy, normalizers=inputs.normalizers,
    )


def sft_cross_entropy(inputs: LossInputs, label_smoothing: float = 0.0, mask_key: str = "response_mask") -> LossResult:
    """Supervised fine-tuning: masked token-mean cross-entropy over the global batch.

    With ``label_smoothing`` eps, each token's loss is ``(1 - eps) NLL + eps mean_v(-log p_v)``
    over the true vocabulary, as ``torch.nn.functional.cross_entropy(label_smoothing=eps)``."""
    log_probs = inputs.log_probs
    mask = inputs.get(mask_key).bool()
    zero = torch.zeros((), device=log_probs.device)
    nll = torch.where(mask, -log_probs, zero).sum()
    if not label_smoothing:
        return nll / max(inputs.normalizers.num_tokens, 1.0), {"sft_loss": WeightedMetric.from_parts(nll, mask.sum())}
    uniform = torch.where(mask, -inputs.mean_log_prob, zero).sum()
    total = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    metrics = {"sft_loss": WeightedMetric.from_parts(total, mask.sum()),
               "sft_nll": WeightedMetric.from_parts(nll, mask.sum())}
    return total / max(inputs.normalizers.num_tokens, 1.0), metrics


@dataclass(frozen=True)
class SFTLossConfig:
    """``label_smoothing``: eps in [0, 1); ``mask_key``: the batch mask of the tokens to learn
    (``loss_mask`` for chat data with several assistant turns; it also sets the normaliser)."""

    label_smoothing: float = 0.0
    mask_key: str = "response_mask"

    def __post_init__(self):
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={self.label_smoothing}: must be in [0, 1) (0: off)")


LOSSES = Registry("training loss", None)  # chosen by the worker: grpo for the actor, sft for warm starts


@LOSSES.register("grpo", "ppo")
def grpo_loss(config: Optional[PolicyLossConfig] = None, *, report_entropy: bool = True) -> Loss:
    """The actor's loss under ``config`` (the run's ``rl_config`` loss keys, see
    ``mindspeed_rl.config.components.policy_loss_config``). Entropy is reported as a metric
    unless ``report_entropy`` is False and the loss has no entropy bonus."""
    config = config or PolicyLossConfig()

    def fn(inputs: LossInputs) -> LossResult:
        return grpo_policy_loss(config, inputs)

    required = ("advantages",) + (("ref_log_probs",) if config.use_kl_loss else ())
    return Loss(fn, GRPO_METRICS, required_keys=required,
                with_entropy=report_entropy or config.entropy_coeff != 0, norm_length=config.loss_norm_length)


@LOSSES.register("sft", "cross_entropy")
def sft_loss(config: Optional[SFTLossConfig] = None) -> Loss:
    """Cross-entropy on the data's own tokens: no sampling temperature, no entropy."""
    config = config or SFTLossConfig()
    eps, key = float(config.label_smoothing), config.mask_key

    def fn(inputs: LossInputs) -> LossResult:
        return sft_cross_entropy(inputs, eps, key)

    required = (key,) if key != "response_mask" else ()
    return Loss(fn, SMOOTHED_SFT_METRICS if eps else SFT_METRICS, required_keys=required, logit_temperature=False,
                with_mean_log_prob=bool(eps), mask_key=key)


def build_loss(name: str, config: object = None) -> Loss:
    """The registered loss ``name`` built from its config."""
    return LOSSES.get(name)(config)
