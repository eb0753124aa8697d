"""Rank function for test_fast_paths: megatron-core's ColumnParallelLinear -> RowParallelLinear pair
(and VocabParallelEmbedding) with engine.fast_paths installed vs megatron's own functions, at
TP = world size; counts the F.linear calls to tell which path ran."""
import torch

HIDDEN, FFN, VOCAB, SEQ, BATCH = 16, 24, 32, 5, 3


def _config(tp, **kw):
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(num_layers=1, hidden_size=HIDDEN, num_attention_heads=2, tensor_model_parallel_size=tp,
                             use_cpu_initialization=True, params_dtype=torch.float32, **kw)


def _modules(cfg):
    from megatron.core.tensor_parallel.layers import ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding

    init = torch.nn.init.normal_
    torch.manual_seed(0)
    emb = VocabParallelEmbedding(VOCAB, HIDDEN, init_method=init, config=cfg)
    col = ColumnParallelLinear(HIDDEN, FFN, config=cfg, init_method=init, bias=True, gather_output=False)
    row = RowParallelLinear(FFN, HIDDEN, config=cfg, init_method=init, bias=True, input_is_parallel=True,
                            skip_bias_add=False)
    for m in (col, row):  # nonzero biases, so their gradients and the bias add are checked too
        with torch.no_grad():
            m.bias.normal_()
    return emb, col, row


def _run(cfg, tokens, grad):
    emb, col, row = _modules(cfg)
    x = emb(tokens)
    y, _ = col(x)
    out, _ = row(torch.nn.functional.gelu(y))
    out.backward(grad)
    params = [p.grad for m in (emb, col, row) for p in m.parameters()]
    return out.detach(), params


def compare(rank, world_size):
    """Max |difference| (fast paths vs megatron's functions) of output and parameter gradients, and
    the F.linear calls each made; also the fallback cases at TP=1."""
    from megatron.core.tensor_parallel import layers

    from mindspeed_rl.engine import fast_paths
    from mindspeed_rl.testing import tiny

    tiny.setup_model_parallel(world_size, 1)
    fast_paths.apply()
    g = torch.Generator().manual_seed(rank)
    tokens = torch.randint(0, VOCAB, (SEQ, BATCH), generator=g).t().contiguous()  # [b, s] as the embedding takes
    grad = torch.randn(BATCH, SEQ, HIDDEN, generator=g)
    calls = []
    real_linear = torch.nn.functional.linear

    def counting(*a, **k):
        calls.append(1)
        return real_linear(*a, **k)

    installed = {name: getattr(layers, name) for name in fast_paths.originals()}
    torch.nn.functional.linear = counting
    fast_paths.F.linear = counting
    try:
        out, grads = _run(_config(world_size), tokens, grad)
        fast_calls = len(calls)
        for name, fn in fast_paths.originals().items():
            setattr(layers, name, fn)
        ref, ref_grads = _run(_config(world_size), tokens, grad)
        megatron_calls = len(calls) - fast_calls
        for name, fn in installed.items():
            setattr(layers, name, fn)
        # deferred embedding wgrad (a gradient buffer; its backward needs the GPU-only gradient
        # accumulation fusion, so forward only): megatron's path, the same output
        emb, col, _ = _modules(_config(world_size))
        col.grad_output_buffer, col.embedding_activation_buffer = [], []
        col.config.defer_embedding_wgrad_compute = True
        with torch.no_grad():
            deferred = col(emb(tokens))[0] - _modules(_config(world_size))[1](emb(tokens))[0]
        deferred_calls = len(calls) - fast_calls - megatron_calls
    finally:
        torch.nn.functional.linear = real_linear
        fast_paths.F.linear = real_linear
    return dict(out=float((out - ref).abs().max()), scale=float(ref.abs().max()),
                grad=max(float((a - b).abs().max()) for a, b in zip(grads, ref_grads)),
                grad_scale=min(float(b.abs().max()) for b in ref_grads),
                fast_calls=fast_calls, megatron_calls=megatron_calls, deferred_calls=deferred_calls,
                deferred_out=float(deferred.abs().max()))
