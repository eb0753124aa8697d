"""The critic's value head: the policy's architecture with its output layer replaced by ``[hidden, 1]``.

A critic engine (``MegatronEngineConfig.output="values"``) builds the same megatron-core GPTModel
as the actor, untied (the head has nothing to share with the embedding), and puts ``ValueHead``
where ``GPTModel.output_layer`` was, so the model returns ``[b, s, 1]`` instead of logits. The
value of response token t is read at the position whose logits predict it (the state before
token t), exactly where the log-probs are read. The backbone loads from a converted policy
checkpoint; the head starts from a seeded draw that is the same on every rank and layout.
"""
from __future__ import annotations

import torch

from mindspeed_rl.engine import batch as engine_batch
from mindspeed_rl.engine import packing as engine_packing

HEAD_PREFIX = "output_layer."


def init_std(hidden_size: int) -> float:
    """The head weight's initial standard deviation (OpenRLHF's value head: 1 / (hidden + 1))."""
    return 1.0 / (hidden_size + 1)


class ValueHead(torch.nn.Module):
    """``hidden -> 1`` on every position, replicated on the TP ranks (its input is the full hidden
    state there); called like megatron's output layer and returns ``(values, None)``."""

    def __init__(self, hidden_size: int, dtype: torch.dtype, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed * 7919 + 11)  # independent of the ranks' RNG streams
        # std 1 / (hidden + 1), as OpenRLHF draws its value head: the final norm's output has an RMS
        # of about 1 per channel, so the first values are ~1/sqrt(hidden), small next to a 0/1 score.
        # (1 / sqrt(hidden + 1) gave values of std ~1: per-token noise that swamped the advantages.)
        weight = torch.randn(1, hidden_size, generator=g, dtype=torch.float64) * init_std(hidden_size)
        self.weight = torch.nn.Parameter(weight.to(dtype))
        self.bias = torch.nn.Parameter(torch.zeros(1, dtype=dtype))

    def forward(self, hidden_states, weight=None, runtime_gather_output=None):  # noqa: ARG002 - output_layer's signature
        return torch.nn.functional.linear(hidden_states, self.weight, self.bias), None


def attach_value_head(model: torch.nn.Module, hidden_size: int, dtype: torch.dtype, seed: int) -> None:
    """Replace the last stage's output layer of an untied GPTModel by a ``ValueHead``."""
    if getattr(model, "share_embeddings_and_output_weights", False):
        raise ValueError("a value head needs the GPTModel built with share_embeddings_and_output_weights=False")
    if model.post_process:
        model.output_layer = ValueHead(hidden_size, dtype, seed)


def token_values(output: torch.Tensor, mb: engine_batch.Batch) -> torch.Tensor:
    """``[b, R]`` float32 values of the response tokens from the model's ``[b, s, 1]`` output
    (or ``[1, T, 1]`` for a packed micro-batch)."""
    pos = engine_batch.response_positions(mb["attention_mask"], mb["response_mask"]).to(output.device)
    if "packed_rows" in mb:
        flat = engine_packing.packed_index(mb["packed_rows"], pos.cpu()).to(output.device)
        return output[0, :, 0].index_select(0, flat.reshape(-1)).view(flat.shape).float()
    return output[..., 0].gather(1, pos).float()


def load_backbone(model: torch.nn.Module, root: str, tp_rank: int, pp_rank: int, hf_config=None) -> None:
    """Load a converted policy checkpoint into a critic: every weight but the output layer (the
    policy's LM head, or nothing when tied), which the value head replaces; strict otherwise."""
    from mindspeed_rl.models import naming
    from mindspeed_rl.models.errors import CheckpointError
    from mindspeed_rl.models.mcore_checkpoint import load_rank_state_dict

    sd, _ = load_rank_state_dict(root, tp_rank, pp_rank, hf_config=hf_config)
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(HEAD_PREFIX)}
    te = any(k.endswith("layer_norm_weight") for k in own)
    mapped = {(naming.to_te_name(k) if te else k): v for k, v in sd.items() if not k.startswith(HEAD_PREFIX)}
    missing = [k for k in own if k not in mapped and not naming.is_extra_state(k)]
    unexpected = [k for k in mapped if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{root}: checkpoint does not match the critic's backbone: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]} (wrong tp/pp/num_layer_list or model config?)")
    model.load_state_dict(mapped, strict=False)  # the head and _extra_state entries stay as they are
