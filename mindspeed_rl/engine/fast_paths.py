"""Torch's own ops for megatron-core's local-spec linear layers where their extra work is a no-op.

With one tensor-parallel rank, no sequence parallelism, no gradient-accumulation fusion and no
deferred embedding wgrad, megatron's ``LinearWithGradAccumulationAndAsyncCommunication`` computes
exactly ``F.linear`` (``matmul(x, W.t()) + b`` forward; ``g @ W`` and ``g.t() @ x`` backward), and
``copy_to_``/``reduce_from_tensor_model_parallel_region`` are identities. They are Python autograd
Functions, though: each call pays Python forward/backward bodies, ctx bookkeeping and autocast
decorators, which on small models (the CPU box, TP=1) costs more than the matmuls. Here those
calls go to torch's C++ ``F.linear`` and skip the identities; any call with TP>1, sequence
parallel, fusion, a frozen weight or a wgrad buffer takes megatron's own path unchanged.

Patched names live in ``megatron.core.tensor_parallel.layers`` (the only caller on the engine's
path: ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding); TE's layers do not use them.
"""
from __future__ import annotations

import functools

import torch.nn.functional as F

_PATCHED = ("linear_with_grad_accumulation_and_async_allreduce", "copy_to_tensor_model_parallel_region",
            "reduce_from_tensor_model_parallel_region")
_applied = False


def _single_rank(group) -> bool:
    return group is not None and group.size() == 1


def _linear(original):
    @functools.wraps(original)
    def linear(input, weight, bias, gradient_accumulation_fusion, allreduce_dgrad, sequence_parallel,
               grad_output_buffer=None, wgrad_deferral_limit=0, async_grad_allreduce=None, tp_group=None):
        if (not gradient_accumulation_fusion and not allreduce_dgrad and not sequence_parallel
                and grad_output_buffer is None and async_grad_allreduce is None
                and _single_rank(_group(tp_group))):
            return F.linear(input, weight, bias)
        return original(input, weight, bias, gradient_accumulation_fusion, allreduce_dgrad, sequence_parallel,
                        grad_output_buffer, wgrad_deferral_limit, async_grad_allreduce, tp_group)

    linear.warned = getattr(original, "warned", False)
    return linear


def _identity_on_one_rank(original):
    @functools.wraps(original)
    def region(input_, group=None):
        if _single_rank(_group(group)):
            return input_
        return original(input_, group=group)

    return region


def _group(group):
    """The TP group a call runs on: its own, else the default one (RowParallelLinear passes None;
    megatron's lookup of the default warns on every call)."""
    if group is not None:
        return group
    from megatron.core import parallel_state

    if not parallel_state.model_parallel_is_initialized():
        return None
    return parallel_state.get_tensor_model_parallel_group()


def apply() -> None:
    """Install the fast paths (idempotent, process-wide; each call still checks its own group)."""
    global _applied
    if _applied:
        return
    from megatron.core.tensor_parallel import layers

    layers.linear_with_grad_accumulation_and_async_allreduce = _linear(
        layers.linear_with_grad_accumulation_and_async_allreduce)
    layers.copy_to_tensor_model_parallel_region = _identity_on_one_rank(layers.copy_to_tensor_model_parallel_region)
    layers.reduce_from_tensor_model_parallel_region = _identity_on_one_rank(
        layers.reduce_from_tensor_model_parallel_region)
    _applied = True


def originals() -> dict:
    """megatron's own functions behind the fast paths (for tests comparing the two)."""
    from megatron.core.tensor_parallel import layers

    return {name: getattr(getattr(layers, name), "__wrapped__", getattr(layers, name)) for name in _PATCHED}

