"""Rollout benchmark: HF rollout backend vs plain ``model.generate``, and weight-update speed;
with ``--vllm``, real vLLM (the vLLM rollout backend) vs the HF backend on the same prompts.

    python3 benchmarks/rollout.py [--batch 16 --prompt-len 32 --max-tokens 64 --hidden 256 ...]
    python3 benchmarks/rollout.py --vllm-only --batch 32 --n 8   # vLLM vs HF engine only

Prints tokens/s of ``HFRolloutEngine.generate`` and of ``transformers`` ``model.generate`` on the
same prompts, same model, same sampling (temperature 1, no stop token so both produce exactly
``max_tokens`` per sequence), measured in the same run; and seconds per GB of
``update_weights`` (in-place copy from HF-named tensors, also through weight buckets) against a
plain ``param.copy_(tensor)`` loop. A tiny random Qwen2 model built from a config (no download).

``--vllm``: the same model saved to a temporary directory and loaded by ``VLLMRolloutEngine``
(in-process, fp32, eager, fixed KV cache); its start-up (engine build + first generate) is timed
apart, then vLLM and the HF engine alternate on the same prompts and sampling; tokens/s median and
spread (min-max) over the repeats. Both produce exactly ``max_tokens`` per sample (no stop id).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def build_model(args):
    from mindspeed_rl.models.random_checkpoint import random_hf_model, tiny_qwen2_config

    cfg = tiny_qwen2_config(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
        num_key_value_heads=max(1, args.hidden // 128), max_position_embeddings=4096,
    )
    return random_hf_model(cfg, seed=0)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--n", type=int, default=1, help="samples per prompt (GRPO group size)")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="1 avoids spin-wait noise on a shared CPU")
    ap.add_argument("--device", default=None, help="default: platform device (CPU without one)")
    ap.add_argument("--vllm", action="store_true", help="also compare real vLLM with the HF engine")
    ap.add_argument("--vllm-only", action="store_true", help="only the vLLM vs HF engine comparison")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from mindspeed_rl.engine.rollout import SamplingParams
    from mindspeed_rl.engine.rollout.buckets import iter_weight_buckets
    from mindspeed_rl.engine.rollout.hf_engine import HFRolloutEngine

    model = build_model(args)
    engine = HFRolloutEngine(model=model, device=args.device, max_batch_size=args.batch * args.n)
    dev = engine.device
    g = torch.Generator().manual_seed(0)
    # Ragged prompts (half to full length), as in a real batch.
    prompts = [
        torch.randint(0, args.vocab, (int(torch.randint(args.prompt_len // 2, args.prompt_len + 1, (1,), generator=g)),),
                      generator=g).tolist()
        for _ in range(args.batch)
    ]
    total_tokens = args.batch * args.n * args.max_tokens
    sp = SamplingParams(n=args.n, temperature=1.0, max_tokens=args.max_tokens, seed=0)

    def run_engine():
        out = engine.generate(prompts, sp)
        assert sum(len(o.token_ids) for grp in out for o in grp) == total_tokens

    width = max(map(len, prompts))
    ids = torch.zeros(args.batch, width, dtype=torch.long)
    mask = torch.zeros(args.batch, width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    ids, mask = ids.to(dev), mask.to(dev)

    def run_generate():
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens,
                num_return_sequences=args.n, eos_token_id=None, pad_token_id=0,
                output_logits=True, return_dict_in_generate=True,  # so it also yields what log-probs need
            )
        assert out.sequences.shape[1] - width == args.max_tokens

    if args.vllm or args.vllm_only:
        compare_vllm(args, model, engine, prompts, sp, total_tokens, run_engine)
        if args.vllm_only:
            return
    run_engine(), run_generate()  # warm-up
    # Interleaved, so that load from other processes hits both sides alike.
    pairs = [(timed(run_engine, 1), timed(run_generate, 1)) for _ in range(args.repeats)]
    t_engine = statistics.median(p[0] for p in pairs)
    t_generate = statistics.median(p[1] for p in pairs)
    print(f"device={dev} model: hidden={args.hidden} layers={args.layers} vocab={args.vocab} "
          f"params={sum(p.numel() for p in model.parameters()) / 1e6:.1f}M threads={args.threads}")
    print(f"workload: {args.batch} prompts x n={args.n}, prompt len {args.prompt_len // 2}-{args.prompt_len}, "
          f"{args.max_tokens} new tokens each ({total_tokens} tokens)")
    print(f"HF rollout engine : {total_tokens / t_engine:10.1f} tokens/s  ({t_engine:.3f} s)")
    print(f"model.generate    : {total_tokens / t_generate:10.1f} tokens/s  ({t_generate:.3f} s)")
    print(f"ratio engine/generate: {t_generate / t_engine:.2f}x")

    # ---- weight update
    source = {k: v.clone() for k, v in build_model(args).state_dict().items()}
    source = {k: v.to(dev) for k, v in source.items()}
    gb = sum(v.numel() * v.element_size() for v in source.values()) / 1e9
    params = dict(model.state_dict(keep_vars=True))

    def plain_copy():
        with torch.no_grad():
            for k, v in source.items():
                params[k].copy_(v)

    def engine_update():
        engine.update_weights(source.items())

    def engine_update_buckets():
        for bucket in iter_weight_buckets(source.items(), 64 * 1024**2):
            engine.update_weights(bucket)

    plain_copy(), engine_update()
    reps = max(5, args.repeats)
    t_plain, t_upd, t_bkt = timed(plain_copy, reps), timed(engine_update, reps), timed(engine_update_buckets, reps)
    print(f"weights: {gb * 1e3:.1f} MB")
    print(f"plain param.copy_      : {t_plain / gb:8.3f} s/GB")
    print(f"engine.update_weights  : {t_upd / gb:8.3f} s/GB  (ratio vs plain {t_upd / t_plain:.2f}x)")
    print(f"  via 64 MB buckets    : {t_bkt / gb:8.3f} s/GB  (ratio vs plain {t_bkt / t_plain:.2f}x)")


def spread(values):
    return f"median {statistics.median(values):8.1f}, min {min(values):8.1f}, max {max(values):8.1f}"


def compare_vllm(args, model, hf_engine, prompts, sp, total_tokens, run_hf):
    import tempfile

    from mindspeed_rl.engine.rollout.vllm_engine import VLLMRolloutEngine

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        t0 = time.perf_counter()
        engine = VLLMRolloutEngine(
            model_path=tmp, dtype="float32", distributed_executor_backend=None, enforce_eager=True,
            kv_cache_memory_bytes=256 * 2**20, max_model_len=args.prompt_len + args.max_tokens + 8,
            max_num_seqs=args.batch * args.n, enable_prefix_caching=False, seed=0,
        )
        t_build = time.perf_counter() - t0

        def run_vllm():
            out = engine.generate(prompts, sp)
            assert sum(len(o.token_ids) for grp in out for o in grp) == total_tokens

        t_first = timed(run_vllm, 1)
        run_hf()  # HF warm-up
        hf_rates, vllm_rates = [], []
        for _ in range(args.repeats):  # interleaved: load from other processes hits both alike
            hf_rates.append(total_tokens / timed(run_hf, 1))
            vllm_rates.append(total_tokens / timed(run_vllm, 1))
        print(f"[vLLM {__import__('vllm').__version__} vs HF rollout engine] {len(prompts)} prompts x n={sp.n}, "
              f"{args.max_tokens} new tokens each ({total_tokens} tokens), {args.repeats} interleaved repeats, "
              f"torch threads {torch.get_num_threads()}")
        print(f"vLLM start-up: engine build {t_build:.1f} s, first generate {t_first:.2f} s (not in the rates)")
        print(f"HF rollout engine : tokens/s {spread(hf_rates)}")
        print(f"vLLM              : tokens/s {spread(vllm_rates)}")
        print(f"ratio vLLM/HF (medians): {statistics.median(vllm_rates) / statistics.median(hf_rates):.2f}x")
        engine.shutdown()


if __name__ == "__main__":
    main()
