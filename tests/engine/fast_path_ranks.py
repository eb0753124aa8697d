"""Rank functions for test_fast_paths: the RoPE fast path against megatron's
``apply_rotary_pos_emb`` (unit and whole GPTModel), and an engine update with the engine's fast
paths (RoPE, gated MLP, DP-only grad finalisation, train/eval switching only on change, logits at the
response positions only) against the same update through megatron's own functions."""
import torch


def _rope_cases():
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding

    # (rotary_percent, interleaved, dtype): the full-width case skips megatron's empty cat, the
    # partial one keeps its pass-through part; bf16 checks the cast of the cached cos/sin
    for percent, interleaved, dtype in [(1.0, False, torch.float32), (0.5, False, torch.float32),
                                        (1.0, True, torch.float32), (1.0, False, torch.bfloat16)]:
        rope = RotaryEmbedding(kv_channels=16, rotary_percent=percent, rotary_interleaved=interleaved,
                               use_cpu_initialization=True)
        yield percent, interleaved, dtype, rope(7)


def _config(interleaved=False, **kw):
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(num_layers=1, hidden_size=32, num_attention_heads=2, use_cpu_initialization=True,
                             rotary_interleaved=interleaved, **kw)


def rope_compare(rank, world_size):
    """Max |fast - megatron| of RoPE outputs and input grads per case, the cache's use, and a
    tiny GPTModel's logits and parameter grads with the fast paths (RoPE, gated MLP) vs megatron's
    functions."""
    from megatron.core.transformer import attention

    from mindspeed_rl.engine import fast_paths
    from mindspeed_rl.testing import tiny

    tiny.setup_model_parallel(world_size, 1)
    fast_paths.apply()
    fast, original = attention.apply_rotary_pos_emb, fast_paths.original_rope()
    g = torch.Generator().manual_seed(rank)
    cases = []
    for percent, interleaved, dtype, freqs in _rope_cases():
        cfg = _config(interleaved)
        # a view with megatron's split strides: the key out of the [s, b, groups, (q+k+v) dims] projection
        base = torch.randn(7, 3, 2, 48, generator=g).to(dtype)
        grad = torch.randn(7, 3, 2, 16, generator=g).to(dtype)
        outs = []
        for fn in (fast, original, fast):  # twice fast: the second call reads the cache
            x = base.clone().requires_grad_(True)
            y = fn(x[..., 16:32], freqs, cfg)
            y.backward(grad)
            outs.append((y.detach(), x.grad[..., 16:32].clone(), y.is_contiguous()))
        cases.append(dict(percent=percent, interleaved=interleaved, dtype=str(dtype),
                          out=max(float((outs[i][0] - outs[1][0]).abs().max()) for i in (0, 2)),
                          grad=max(float((outs[i][1] - outs[1][1]).abs().max()) for i in (0, 2)),
                          scale=float(outs[1][0].abs().max()), contiguous=all(o[2] for o in outs)))
    cached = len(fast.cache)
    # packed sequences (THD) take megatron's function: nothing new in the cache
    fast.cache.clear()
    freqs = next(_rope_cases())[3]
    t = torch.randn(7, 2, 16, generator=g)
    cu = torch.tensor([0, 3, 7], dtype=torch.int32)
    from megatron.core import parallel_state

    cp = parallel_state.get_context_parallel_group()
    thd = float((fast(t, freqs, _config(), cu_seqlens=cu, cp_group=cp)
                 - original(t, freqs, _config(), cu_seqlens=cu, cp_group=cp)).abs().max())
    thd_cached = len(fast.cache)

    # a whole GPTModel (GQA, 2 layers) forward + backward, the fast path vs megatron's function
    hf_config = tiny.tiny_qwen2_config(**tiny.SMALL)
    tokens = torch.randint(0, hf_config["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(9).unsqueeze(0).expand(2, -1)
    from megatron.core.transformer.mlp import MLP

    fast_mlp = MLP.forward
    mlp_calls = fast_mlp.fast_calls
    runs = []
    for fn, mlp in ((fast, fast_mlp), (original, fast_paths.original_mlp_forward())):
        attention.apply_rotary_pos_emb, MLP.forward = fn, mlp
        try:
            torch.manual_seed(0)
            model = tiny.build_gpt_model(hf_config, world_size, 1)
            logits = model(tokens, positions, None)
            (logits.float() ** 2).mean().backward()
            runs.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
        finally:
            attention.apply_rotary_pos_emb, MLP.forward = fast, fast_mlp
    return dict(cases=cases, cached=cached, thd=thd, thd_cached=thd_cached,
                mlp_fast_calls=fast_mlp.fast_calls - mlp_calls,
                model_out=float((runs[0][0] - runs[1][0]).abs().max()),
                model_grad=max(float((a - b).abs().max()) for a, b in zip(runs[0][1], runs[1][1])),
                model_grad_scale=min(float(b.abs().max()) for b in runs[1][1]))


def engine_compare(rank, world_size, hf_dir, mg_dir, tp, pp, sequence_parallel=False):
    """Two engines from one checkpoint, one update step each on the same rows plus a log-prob
    pass between two steps: the engine's fast paths vs megatron's finalize_model_grads, RoPE, MLP
    forward and an unconditional model.train()/eval(). Returns max differences of metrics,
    log-probs and parameters, which finalisation the engine chose and whether the fast paths ran."""
    from megatron.core.distributed import finalize_model_grads
    from megatron.core.transformer import attention

    from mindspeed_rl.algorithms import grpo_loss
    from mindspeed_rl.engine import MegatronEngine, fast_paths
    from mindspeed_rl.engine import megatron_engine as me
    from tests.engine import engine_ranks

    batch = engine_ranks.make_batch(engine_ranks.model_config()["vocab_size"])
    cfg = dict(sequence_parallel=sequence_parallel)
    fast = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp, **cfg), load=mg_dir)
    plain = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp, **cfg), load=mg_dir)
    chosen = fast.transformer_config.finalize_model_grads_func is me.finalize_dp_only
    plain.transformer_config.finalize_model_grads_func = finalize_model_grads
    plain._set_training = lambda training: plain.model.train(training)  # megatron's every-call switch
    if plain.response_logits is not None:  # megatron's logits at every position, picked afterwards
        plain.response_logits.remove()
        plain.response_logits = None
    from megatron.core.transformer.mlp import MLP

    fast_rope, megatron_rope = attention.apply_rotary_pos_emb, fast_paths.original_rope()
    fast_mlp, megatron_mlp = MLP.forward, fast_paths.original_mlp_forward()
    init = [p.detach().clone() for p in fast.model.parameters()]
    mlp_calls = fast_mlp.fast_calls
    local = engine_ranks.dp_rows(batch, fast)
    loss = grpo_loss(engine_ranks.loss_config())
    out = {}
    for name, engine, rope, mlp in (("fast", fast, fast_rope, fast_mlp), ("plain", plain, megatron_rope, megatron_mlp)):
        attention.apply_rotary_pos_emb, MLP.forward = rope, mlp
        try:
            m1 = engine.train_batch(local, loss, num_mini_batches=2)
            lp = engine.infer_batch(local)["log_probs"]
            m2 = engine.train_batch(local, loss)
        finally:
            attention.apply_rotary_pos_emb, MLP.forward = fast_rope, fast_mlp
        out[name] = (m1, m2, lp, [p.detach().clone() for p in engine.model.parameters()])
        if name == "fast":
            mlp_calls = fast_mlp.fast_calls - mlp_calls
    (fm1, fm2, flp, fp), (pm1, pm2, plp, pp_) = out["fast"], out["plain"]
    metric = max(abs(a[k] - b[k]) for a, b in ((fm1, pm1), (fm2, pm2)) for k in b)
    return dict(chosen_dp_only=chosen, mlp_fast_calls=mlp_calls,
                response_logit_calls=fast.response_logits.calls if fast.response_logits is not None else None,
                last_stage=fast.is_last_stage, rope_cached=len(fast_rope.cache), metrics=metric,
                log_probs=float((flp - plp).abs().max()),
                params=max(float((a - b).abs().max()) for a, b in zip(fp, pp_)),
                moved=max(float((a - b).abs().max()) for a, b in zip(fp, init)), grad_norm=fm1["grad_norm"])
