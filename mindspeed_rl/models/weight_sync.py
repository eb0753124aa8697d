"""Full HF-named tensors from a live, TP/PP-sharded megatron-core model (actor -> rollout sync).

``iter_hf_weights`` is called collectively by every rank of one model-parallel group (all TP
ranks of all PP stages of a data-parallel replica). For each parameter, in HF order, the stage
that owns it all-gathers its TP shards and rebuilds the HF tensors with the same layouts the
converter uses; with PP > 1 the result is then broadcast from that stage, so every rank yields
the same buckets of ``(hf_name, tensor)`` and can hand them to its colocated rollout engine.
Shapes and dtypes are known on every rank from the bridge, so no metadata is exchanged.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch

from mindspeed_rl.models import naming
from mindspeed_rl.models.layouts import Replicated


def _canonical_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in model.named_parameters():
        while name.startswith("module."):  # DDP / Float16Module wrappers
            name = name[len("module."):]
        out[naming.from_te_name(name)] = p
    return out


def iter_hf_weights(
    model: torch.nn.Module,
    bridge,
    padded_vocab: int,
    num_layer_list: Optional[Sequence[int]] = None,
    bucket_bytes: int = 512 * 2**20,
    dtype: Optional[torch.dtype] = None,
    *,
    tp_group,
    pp_group,
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Yield buckets (lists) of ``(hf_name, full tensor)``, about ``bucket_bytes`` each.

    ``model`` is this rank's GPTModel chunk (no virtual pipeline); ``tp_group`` / ``pp_group``
    are the torch.distributed groups of its tensor- and pipeline-parallel peers (the engine
    passes its own). Tensors are on the parameters' device, in ``dtype`` (default: the
    parameters' dtype).
    """
    import torch.distributed as dist
    tp, pp = dist.get_world_size(tp_group), dist.get_world_size(pp_group)
    pp_rank = dist.get_rank(pp_group)
    params = _canonical_params(model)
    device = next(iter(params.values())).device
    hf_shapes = bridge.hf_shapes()

    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for stage in range(pp):
        for spec in bridge.stage_params(stage, pp, padded_vocab, num_layer_list):
            if spec.is_tied_copy:
                continue  # the embedding already went out as model.embed_tokens.weight
            if stage == pp_rank:
                local = params[spec.mcore_name].detach()
                if dtype is not None:
                    local = local.to(dtype)
                if tp > 1 and not isinstance(spec.layout, Replicated):
                    shards = [torch.empty_like(local) for _ in range(tp)]
                    dist.all_gather(shards, local.contiguous(), group=tp_group)
                else:
                    shards = [local] * tp
                tensors = [t.contiguous() for t in spec.layout.to_hf(shards)]
            else:
                out_dtype = dtype or next(iter(params.values())).dtype
                tensors = [torch.empty(hf_shapes[n], dtype=out_dtype, device=device) for n in spec.hf_names]
            if pp > 1:
                src = dist.get_global_rank(pp_group, stage)
                for t in tensors:
                    dist.broadcast(t, src=src, group=pp_group)
            for name, t in zip(spec.hf_names, tensors):
                bucket.append((name, t))
                size += t.nbytes
            if size >= bucket_bytes:
                yield bucket
                bucket, size = [], 0
    if bucket:
        yield bucket

