"""Rank functions for the models tests: build a megatron-core GPTModel from a HF config through
the bridge, load a converted checkpoint, run a forward-only pass through megatron's pipeline
schedule and return the full (TP-gathered, un-padded) logits from the last stage's TP rank 0."""
import torch

SEQ, BATCH = 12, 2


def tokens_for(vocab_size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.randint(0, vocab_size, (BATCH, SEQ), generator=g)


def setup_parallel(tp: int, pp: int) -> None:
    from mindspeed_rl.platform import current_platform

    current_platform().apply_megatron_adaptor()
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    ps.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    model_parallel_cuda_manual_seed(1234)


def build_model(bridge, tp: int, pp: int, padded_vocab: int, num_layer_list=None):
    from megatron.core import parallel_state as ps
    from megatron.core.models.gpt import GPTModel

    cfg = bridge.transformer_config(tp, pp, params_dtype=torch.float32, num_layer_list=num_layer_list)
    return GPTModel(
        cfg,
        bridge.layer_spec(use_te=False),
        **bridge.gpt_model_kwargs(tp, padded_vocab=padded_vocab),
        pre_process=ps.is_pipeline_first_stage(),
        post_process=ps.is_pipeline_last_stage(),
    )


def forward_logits(model, tokens: torch.Tensor):
    from megatron.core import parallel_state as ps
    from megatron.core import tensor_parallel
    from megatron.core.pipeline_parallel import get_forward_backward_func

    positions = torch.arange(tokens.shape[1]).unsqueeze(0).expand(tokens.shape[0], -1)
    captured = {}

    def loss_func(logits):
        captured["logits"] = tensor_parallel.gather_from_tensor_model_parallel_region(logits).detach().clone()
        return logits.sum() * 0.0, {}

    def forward_step(data_iterator, model):
        return model(tokens, positions, None), loss_func

    model.eval()
    with torch.no_grad():
        get_forward_backward_func()(
            forward_step_func=forward_step,
            data_iterator=iter([None]),
            model=[model],
            num_microbatches=1,
            seq_length=tokens.shape[1],
            micro_batch_size=tokens.shape[0],
            forward_only=True,
        )
    if ps.is_pipeline_last_stage() and ps.get_tensor_model_parallel_rank() == 0:
        return captured["logits"]
    return None


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
            setup_parallel(tp, pp)
        bridge = get_bridge(meta["hf_config"])
        model = build_model(bridge, tp, pp, meta["padded_vocab_size"], meta["num_layer_list"])
        load_rank_checkpoint(model, mg_dir, ps.get_tensor_model_parallel_rank(),
                             ps.get_pipeline_model_parallel_rank())
        logits = forward_logits(model, tokens_for(bridge.vocab_size))
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
    setup_parallel(tp, pp)
    bridge = get_bridge(meta["hf_config"])
    model = build_model(bridge, tp, pp, meta["padded_vocab_size"], meta["num_layer_list"])
    load_rank_checkpoint(model, mg_dir, ps.get_tensor_model_parallel_rank(), ps.get_pipeline_model_parallel_rank())
    buckets = list(iter_hf_weights(model, bridge, meta["padded_vocab_size"], meta["num_layer_list"],
                                   bucket_bytes=bucket_bytes, tp_group=ps.get_tensor_model_parallel_group(),
                                   pp_group=ps.get_pipeline_model_parallel_group()))
    return [[(n, t.clone()) for n, t in b] for b in buckets]
