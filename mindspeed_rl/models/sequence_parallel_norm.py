"""An RMSNorm for megatron-core's local (pure torch) spec that works under sequence parallelism.

megatron-core 0.16's ``WrappedTorchNorm`` refuses ``sequence_parallel`` ("not supported by torch
LayerNorm"): with the sequence split over the TP ranks each rank's norm weight sees only its part of
the tokens, so its gradient must be summed over TP, which Megatron does for every parameter marked
``sequence_parallel`` (``finalize_model_grads``). Its fused norms (Apex, TE) mark their weights;
this one does the same for torch's RMSNorm, so CPU runs (and tests) can use sequence parallelism.
"""
from __future__ import annotations

import torch


class SequenceParallelRMSNorm(torch.nn.RMSNorm):
    def __init__(self, config, hidden_size: int, eps: float = 1e-5, persist_layer_norm: bool = False,
                 zero_centered_gamma: bool = False, normalization: str = "RMSNorm"):
        if config.normalization != "RMSNorm":
            raise ValueError(f"SequenceParallelRMSNorm is an RMSNorm; the TransformerConfig has "
                             f"normalization={config.normalization!r}")
        super().__init__(hidden_size, eps=eps)
        setattr(self.weight, "sequence_parallel", config.sequence_parallel)


def local_spec_for_sequence_parallel(layer_spec, config):
    """The block spec of ``layer_spec`` (megatron-core's local layer spec) with every norm, the final
    one included, a ``SequenceParallelRMSNorm``; layers as many as this pipeline stage builds."""
    import dataclasses

    from megatron.core.transformer.transformer_block import TransformerBlockSubmodules, get_num_layers_to_build

    sub = dataclasses.replace(layer_spec.submodules, input_layernorm=SequenceParallelRMSNorm,
                              pre_mlp_layernorm=SequenceParallelRMSNorm)
    layer = dataclasses.replace(layer_spec, submodules=sub)
    return TransformerBlockSubmodules(layer_specs=[layer] * get_num_layers_to_build(config),
                                      layer_norm=SequenceParallelRMSNorm)
