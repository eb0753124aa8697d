"""Seconds to build a MegatronEngine (actor: model, DDP, optimizer) from a converted checkpoint:
with Megatron's random initialisation first (``perform_initialization=True``, what the engine did
before) vs without it (the checkpoint overwrites every weight, so ``engine.kernels`` skips it).

One gloo rank; the sides alternate (A, B, A, B ...) in fresh processes, median of ``--repeats``.
On CPU both sides initialise on the CPU; on CUDA the "after" side also creates the weights on the
device (``use_cpu_initialization`` only on CPU).

    python3 benchmarks/engine_init.py
    python3 benchmarks/engine_init.py --hidden 1024 --layers 8 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _build(rank, world, hf_dir, mg_dir, initialise):
    import torch

    from mindspeed_rl.engine import MegatronEngine, MegatronEngineConfig

    torch.set_num_threads(1)
    overrides = {"perform_initialization": True} if initialise else {}
    cfg = MegatronEngineConfig(params_dtype="fp32", transformer_overrides=overrides, use_distributed_optimizer=False)
    start = time.perf_counter()
    engine = MegatronEngine(hf_dir, cfg, load=mg_dir)
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in engine.model.parameters())
    return {"seconds": seconds, "params": params,
            "perform_initialization": engine.transformer_config.perform_initialization}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    import torch

    from mindspeed_rl.models.convert import hf_to_mcore
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint
    from mindspeed_rl.utils.rank_processes import run_distributed

    with tempfile.TemporaryDirectory() as tmp:
        hf, mg = os.path.join(tmp, "hf"), os.path.join(tmp, "mg")
        config = tiny_qwen2_config(hidden_size=a.hidden, intermediate_size=3 * a.hidden, num_hidden_layers=a.layers,
                                   num_attention_heads=max(a.hidden // 64, 1), num_key_value_heads=max(a.hidden // 256, 1),
                                   vocab_size=a.vocab)
        write_random_hf_checkpoint(hf, config, torch.float32, seed=0)
        hf_to_mcore(hf, mg, tp=1, pp=1, quiet=True)
        times = {True: [], False: []}
        params = 0
        for _ in range(a.repeats):
            for initialise in (True, False):
                out = run_distributed(_build, 1, hf, mg, initialise, timeout=900)[0]
                assert out["perform_initialization"] is initialise
                times[initialise].append(out["seconds"])
                params = out["params"]
    before, after = statistics.median(times[True]), statistics.median(times[False])
    print(f"engine build from a converted checkpoint, {params / 1e6:.1f}M parameters, 1 rank, {a.repeats} repeats:")
    print(f"  random init first (before): median {before:.2f} s  (all: {', '.join(f'{t:.2f}' for t in times[True])})")
    print(f"  no random init    (after):  median {after:.2f} s  (all: {', '.join(f'{t:.2f}' for t in times[False])})")
    print(f"  speed-up {before / after:.2f}x")


if __name__ == "__main__":
    main()
