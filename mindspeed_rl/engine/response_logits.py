"""Logits at the response positions only.

The losses and log-prob passes read the logits at the positions that predict a response token
(``batch.response_positions``); the prompt's positions are thrown away. Computing them anyway
costs ``tokens x hidden x vocab`` multiply-adds in the forward and twice that in the backward, and
a ``[b, s, vocab]`` tensor, which for Qwen's 152k vocabulary is the largest activation of the step.
A forward pre-hook on ``GPTModel.output_layer`` picks the response rows of the final hidden states
(``[s, b, h]`` or packed ``[T, 1, h]``) before the projection, as megatron-core itself does for
last-token inference logits, so the model returns ``[1, b * R, vocab]`` in the rows' order.

Not with sequence parallelism: there the output layer all-gathers the sequence itself, and picking
rows before it would need that gather (and its gradient's reduce-scatter) done here instead.
"""
from __future__ import annotations

from typing import Optional

import torch


RESPONSE_LOGITS = "logits_at_responses"  # a micro-batch key: its logits are [1, b * R, vocab], the response rows


def flat_positions(positions: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Rows of the flattened ``[s, b, h]`` hidden states for ``positions`` ``[b, R]``: ``s * b + row``."""
    rows = torch.arange(positions.shape[0], device=positions.device).unsqueeze(-1)
    return (positions * batch_size + rows).reshape(-1)


class ResponseLogits:
    """A pre-hook on ``output_layer`` that projects only the rows given to ``select`` (once)."""

    def __init__(self, output_layer: torch.nn.Module):
        self._pending: Optional[torch.Tensor] = None
        self._handle = output_layer.register_forward_pre_hook(self._pick_rows, with_kwargs=True)
        self.calls = 0  # how many forwards took the response rows only (tests check it ran)

    def select(self, flat_index: torch.Tensor) -> None:
        """The next forward's output layer sees only these rows of the flattened hidden states."""
        self._pending = flat_index

    def clear(self) -> None:
        self._pending = None

    def _pick_rows(self, module, args, kwargs):
        index, self._pending = self._pending, None
        if index is None:  # a forward that did not ask (export, a caller's own model call)
            return None
        hidden = args[0]
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index).unsqueeze(1)  # [N, 1, h]
        self.calls += 1
        return (picked, *args[1:]), kwargs

    def remove(self) -> None:
        self._handle.remove()
