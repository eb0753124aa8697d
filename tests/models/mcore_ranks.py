"""Rank functions for the models tests: build a megatron-core GPTModel from a HF config through
the bridge, load a converted checkpoint, run a forward-only pass through megatron's pipeline
schedule and return the full (TP-gathered, un-padded) logits from the last stage's TP rank 0."""
import torch

from mindspeed_rl.testing import tiny

SEQ, BATCH = 12, 2


def tokens_for(vocab_size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.randint(0, vocab_size, (BATCH, SEQ), generator=g)


def converted_logits(rank, world_size, mg_dirs):
    """Load each converted checkpoint (all at the same TP/PP) and return their logits (or Nones)."""
    from megatron.core import parallel_state as ps

    from mindspeed_rl.models import get_bridge
    from mindspeed_rl.models.mcore_checkpoint import load_rank_checkpoint, read_meta

    out = []
    for mg_dir in mg_dirs:
        meta = read_meta(mg_dir)
        tp, pp = meta["tp"], meta["pp"]
        if not ps.model_parallel_is_initialized():
            tiny.setup_model_parallel(tp, pp)
        bridge = get_bridge(meta["hf_config"])
        model = tiny.build_gpt_model(meta["hf_config"], tp, pp, meta["padded_vocab_size"], meta["num_layer_list"])
        load_rank_checkpoint(model, mg_dir, ps.get_tensor_model_parallel_rank(),
                             ps.get_pipeline_model_parallel_rank())
        logits, _ = tiny.run_schedule(model, tokens_for(bridge.vocab_size))
        out.append(None if logits is None else logits[..., : bridge.vocab_size])
    return out


def synced_weights(rank, world_size, mg_dir, bucket_bytes):
    """Load the converted checkpoint, then gather it back into HF tensors through weight_sync."""
    from megatron.core import parallel_state as ps

    from mindspeed_rl.models import get_bridge
    from mindspeed_rl.models.mcore_checkpoint import load_rank_checkpoint, read_meta
    from mindspeed_rl.models.weight_sync import iter_hf_weights

    meta = read_meta(mg_dir)
    tp, pp = meta["tp"], meta["pp"]
    tiny.setup_model_parallel(tp, pp)
    bridge = get_bridge(meta["hf_config"])
    model = tiny.build_gpt_model(meta["hf_config"], tp, pp, meta["padded_vocab_size"], meta["num_layer_list"])
    load_rank_checkpoint(model, mg_dir, ps.get_tensor_model_parallel_rank(), ps.get_pipeline_model_parallel_rank())
    buckets = list(iter_hf_weights(model, bridge, meta["padded_vocab_size"], meta["num_layer_list"],
                                   bucket_bytes=bucket_bytes, tp_group=ps.get_tensor_model_parallel_group(),
                                   pp_group=ps.get_pipeline_model_parallel_group()))
    return [[(n, t.clone()) for n, t in b] for b in buckets]
