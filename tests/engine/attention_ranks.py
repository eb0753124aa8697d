"""Rank function for test_sdpa_attention: megatron-core's DotProductAttention vs engine.sdpa_attention's
SDPAttention on the same inputs, at TP = world size (each rank holds its share of the heads)."""
import torch

HEADS, DIM, SEQ, BATCH = 4, 8, 7, 3


def _config(tp, groups, dropout=0.0):
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(num_layers=1, hidden_size=HEADS * DIM, num_attention_heads=HEADS, num_query_groups=groups,
                             tensor_model_parallel_size=tp, attention_dropout=dropout, hidden_dropout=0.0,
                             use_cpu_initialization=True, params_dtype=torch.float32)


def _inputs(heads, groups, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(SEQ, BATCH, heads, DIM, generator=g, dtype=torch.float64).float()
    k = torch.randn(SEQ, BATCH, groups, DIM, generator=g, dtype=torch.float64).float()
    v = torch.randn(SEQ, BATCH, groups, DIM, generator=g, dtype=torch.float64).float()
    grad = torch.randn(SEQ, BATCH, heads * DIM, generator=g, dtype=torch.float64).float()
    return [t.requires_grad_() for t in (q, k, v)], grad


def _run(module, inputs, grad, mask=None):
    q, k, v = (t.detach().clone().requires_grad_() for t in inputs)
    out = module(q, k, v, mask)
    out.backward(grad)
    return out.detach(), [t.grad for t in (q, k, v)]


def compare(rank, world_size):
    """Max |difference| of outputs and q/k/v gradients, SDPA vs megatron, per case; plus which path ran."""
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType

    from mindspeed_rl.engine.sdpa_attention import SDPAttention
    from mindspeed_rl.testing import tiny

    tiny.setup_model_parallel(world_size, 1)
    torch.manual_seed(0)
    out = {}
    for name, groups in (("gqa", 2), ("mha", HEADS)):
        cfg = _config(world_size, groups)
        kw = dict(layer_number=1, attn_mask_type=AttnMaskType.causal, attention_type="self")
        ref, ours = DotProductAttention(cfg, **kw), SDPAttention(cfg, **kw)
        inputs, grad = _inputs(HEADS // world_size, groups // world_size, seed=10 + rank)
        calls = []
        real_sdpa = torch.nn.functional.scaled_dot_product_attention

        def counting(*a, **k):
            calls.append(1)
            return real_sdpa(*a, **k)

        torch.nn.functional.scaled_dot_product_attention = counting
        try:
            o_ref, g_ref = _run(ref, inputs, grad)
            o, g = _run(ours, inputs, grad)
            fused_calls = len(calls)
            # an explicit mask (here: also hide the first key from every query) takes megatron's path
            mask = torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), diagonal=1)
            mask[1:, 0] = True
            mask = mask.view(1, 1, SEQ, SEQ)
            om_ref, gm_ref = _run(ref, inputs, grad, mask)
            om, gm = _run(ours, inputs, grad, mask)
            masked_calls = len(calls) - fused_calls
        finally:
            torch.nn.functional.scaled_dot_product_attention = real_sdpa
        out[name] = dict(
            out=float((o - o_ref).abs().max()), grad=max(float((a - b).abs().max()) for a, b in zip(g, g_ref)),
            scale=float(o_ref.abs().max()), fused_calls=fused_calls,
            masked_out=float((om - om_ref).abs().max()), masked_calls=masked_calls,
            mask_matters=float((om_ref - o_ref).abs().max()),
        )
    # attention dropout > 0 while training: megatron's path (its dropout, its RNG tracker)
    drop = SDPAttention(_config(world_size, 2, dropout=0.5), layer_number=1, attn_mask_type=AttnMaskType.causal,
                        attention_type="self")
    inputs, _ = _inputs(HEADS // world_size, 2 // world_size, seed=3)
    out["dropout_train_plain"] = drop._plain_causal(inputs[0], inputs[1], None, None, None, None)
    drop.eval()
    out["dropout_eval_plain"] = drop._plain_causal(inputs[0], inputs[1], None, None, None, None)
    return out
