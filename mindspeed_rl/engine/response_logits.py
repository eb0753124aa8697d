"""Logits at the response positions only.

The losses and log-prob passes read the logits at the positions that predict a response token
(``batch.response_positions``); the prompt's positions are thrown away. Computing them anyway
costs ``tokens x hidden x vocab`` multiply-adds in the forward and twice that in the backward, and
a ``[b, s, vocab]`` tensor, which for Qwen's 152k vocabulary is the largest activation of the step.
A forward pre-hook on ``GPTModel.output_layer`` picks the response rows of the final hidden states
(``[s, b, h]`` or packed ``[T, 1, h]``) before the projection, as megatron-core itself does for
last-token inference logits, so the model returns ``[1, b * R, vocab]`` in the rows' order.

With sequence parallelism the hidden states reach the layer split along the sequence and the
layer all-gathers them itself. Here the gather is done first, with a backward that only splits
(``tensor_parallel_output_grad=False``), and the layer runs that one call without sequence
parallelism, so its input copy all-reduces the gradient over TP: split after all-reduce is the
reduce-scatter the layer's own gather would have done.
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
    """Hooks on ``output_layer`` that project only the rows given to ``select`` (for one forward)."""

    def __init__(self, output_layer: torch.nn.Module):
        self._pending: Optional[torch.Tensor] = None
        self._sequence_parallel = bool(getattr(output_layer, "sequence_parallel", False))
        self._handles = [output_layer.register_forward_pre_hook(self._pick_rows, with_kwargs=True)]
        if self._sequence_parallel:
            self._handles.append(output_layer.register_forward_hook(self._restore_sequence_parallel))
        self.calls = 0  # how many forwards took the response rows only (tests check it ran)

    def select(self, flat_index: torch.Tensor) -> None:
        """The next forward's output layer sees only these rows of the flattened hidden states."""
        self._pending = flat_index

    def _pick_rows(self, module, args, kwargs):
        index, self._pending = self._pending, None
        if index is None:  # a forward that did not ask (export, a caller's own model call)
            self._restore_sequence_parallel(module)
            return None
        hidden = args[0]
        if self._sequence_parallel:
            from megatron.core.tensor_parallel.mappings import gather_from_sequence_parallel_region

            hidden = gather_from_sequence_parallel_region(hidden, tensor_parallel_output_grad=False,
                                                          group=module.tp_group)
            module.sequence_parallel = False  # this call only: the rows are whole, every TP rank has them
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index).unsqueeze(1)  # [N, 1, h]
        self.calls += 1
        return (picked, *args[1:]), kwargs

    def _restore_sequence_parallel(self, module, *_):
        module.sequence_parallel = self._sequence_parallel

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
