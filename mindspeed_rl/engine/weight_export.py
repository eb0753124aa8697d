"""Full HF-named tensors from a live, TP/PP-sharded engine (for weight sync to the rollout engine).

The parameter map and the shard layouts come from the ``models`` bridge (``stage_params``,
``Layout.to_hf``), so sync, converter and training agree by construction. Every rank walks the
specs of every pipeline stage in the same order: the owning stage broadcasts its local shard over
the PP group, the TP group all-gathers the shards, and ``to_hf`` reassembles the HF tensors. The
caller gets every HF tensor once, on every rank, one parameter at a time (memory: one full tensor).
"""
from __future__ import annotations

from typing import Iterator, Tuple

import torch
import torch.distributed as dist

from mindspeed_rl.models import layouts as L
from mindspeed_rl.models import naming


def _local_state(engine) -> dict:
    from mindspeed_rl.engine.megatron_engine import unwrap

    model = unwrap(engine.model)
    params = dict(model.named_parameters())
    te = any(k.endswith("layer_norm_weight") for k in params)
    return {(naming.from_te_name(k) if te else k): v for k, v in params.items()}


def iter_hf_weights(engine) -> Iterator[Tuple[str, torch.Tensor]]:
    bridge, ps = engine.bridge, engine.ps
    tp, pp = engine.tp_size, engine.pp_size
    tp_group = ps.get_tensor_model_parallel_group()
    pp_group = ps.get_pipeline_model_parallel_group()
    pp_ranks = dist.get_process_group_ranks(pp_group) if pp > 1 else None
    local = _local_state(engine)
    hf_shapes = bridge.hf_shapes()
    dtype = engine.config.torch_dtype
    num_layer_list = engine.config.num_layer_list
    for stage in range(pp):
        for spec in bridge.stage_params(stage, pp, engine.padded_vocab, num_layer_list):
            if spec.is_tied_copy:
                continue  # the HF checkpoint has only the embedding
            if stage == engine.pp_rank:
                shard = local[spec.mcore_name].detach().to(dtype)
            else:
                shape = spec.layout.local_shape([hf_shapes[n] for n in spec.hf_names], tp)
                if isinstance(spec.layout, L.VocabParallel):
                    shape = (engine.padded_vocab // tp, *shape[1:])
                shard = torch.empty(shape, dtype=dtype, device=engine.device)
            if pp > 1:
                shard = shard.contiguous()
                dist.broadcast(shard, src=pp_ranks[stage], group=pp_group)
            if tp > 1 and not isinstance(spec.layout, L.Replicated):
                shards = [torch.empty_like(shard) for _ in range(tp)]
                dist.all_gather(shards, shard.contiguous(), group=tp_group)
            else:
                shards = [shard]
            for name, tensor in zip(spec.hf_names, spec.layout.to_hf(shards)):
                yield name, tensor
