"""Rank functions for the platform acceptance test: a tiny Qwen2-architecture megatron-core
GPTModel at several TP/PP layouts, all starting from the same full weights.

The TP1 model is saved once with megatron's dist_checkpointing; every other layout loads it
resharded, so each layout starts from identical full weights without this test relying on our
own shard mapping (that has its own tests in tests/convert).
"""
import torch

VOCAB, SEQ, BATCH = 96, 12, 2


def tiny_qwen2_config(tp: int, pp: int):
    import torch.nn.functional as F
    from megatron.core.transformer import TransformerConfig

    return TransformerConfig(
        num_layers=4,
        hidden_size=64,
        num_attention_heads=4,
        num_query_groups=2,  # GQA
        ffn_hidden_size=96,
        kv_channels=16,
        normalization="RMSNorm",
        layernorm_epsilon=1e-6,
        gated_linear_unit=True,  # SwiGLU
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=pp,
        pipeline_dtype=torch.float32,
        params_dtype=torch.float32,
        use_cpu_initialization=True,
        sequence_parallel=False,
    )


def _setup(tp: int, pp: int):
    from mindspeed_rl.platform import current_platform

    current_platform().apply_megatron_adaptor()
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    ps.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    model_parallel_cuda_manual_seed(1234)


def _build(tp: int, pp: int):
    from megatron.core import parallel_state as ps
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    return GPTModel(
        tiny_qwen2_config(tp, pp),
        get_gpt_layer_local_spec(normalization="RMSNorm"),
        vocab_size=VOCAB,
        max_sequence_length=SEQ,
        pre_process=ps.is_pipeline_first_stage(),
        post_process=ps.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=False,
        position_embedding_type="rope",
        rotary_base=10000,
    )


def _batch():
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    labels = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    return tokens, labels


def save_reference(rank, world_size, ckpt_dir):
    """TP1 PP1: build, save with dist_checkpointing, then run the same check as every layout."""
    _setup(1, 1)
    from megatron.core import dist_checkpointing

    model = _build(1, 1)
    dist_checkpointing.save(model.sharded_state_dict(), ckpt_dir)
    return forward_backward(model)


def run_layout(rank, world_size, tp, pp, ckpt_dir):
    _setup(tp, pp)
    from megatron.core import dist_checkpointing

    model = _build(tp, pp)
    state = dist_checkpointing.load(model.sharded_state_dict(), ckpt_dir)
    model.load_state_dict(state)
    return forward_backward(model)


def forward_backward(model):
    """One forward+backward through megatron's schedule; returns full-vocab logits, loss, grad norm
    (on the rank that holds the last stage and TP rank 0; None elsewhere)."""
    from megatron.core import parallel_state as ps
    from megatron.core import tensor_parallel
    from megatron.core.optimizer.clip_grads import get_grad_norm_fp32
    from megatron.core.pipeline_parallel import get_forward_backward_func

    tokens, labels = _batch()
    positions = torch.arange(SEQ).unsqueeze(0).expand(BATCH, -1)
    captured = {}

    def loss_func(logits):
        full = tensor_parallel.gather_from_tensor_model_parallel_region(logits)
        captured["logits"] = full.detach().clone()
        per_token = tensor_parallel.vocab_parallel_cross_entropy(logits.transpose(0, 1).contiguous(), labels.t().contiguous())
        loss = per_token.mean()
        return loss, {"loss": loss.detach()}

    def forward_step(data_iterator, model):
        return model(tokens, positions, None), loss_func

    model.config.finalize_model_grads_func = None
    model.zero_grad()
    losses = get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter([None]),
        model=[model],
        num_microbatches=1,
        seq_length=SEQ,
        micro_batch_size=BATCH,
        forward_only=False,
    )
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), "backward produced no or non-finite grads"
    # Grad norm over the whole model-parallel group: shared parameters counted once.
    params_for_norm = [
        p.grad
        for p in model.parameters()
        if p.grad is not None
        and (getattr(p, "tensor_model_parallel", False) or ps.get_tensor_model_parallel_rank() == 0)
    ]
    grad_norm = get_grad_norm_fp32(params_for_norm, grad_stats_parallel_group=ps.get_model_parallel_group())
    if ps.is_pipeline_last_stage() and ps.get_tensor_model_parallel_rank() == 0:
        return {"logits": captured["logits"], "loss": losses[0]["loss"], "grad_norm": float(grad_norm)}
    return None
