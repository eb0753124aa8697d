"""The --dry-run plan against the measured tensor memory of one actor engine on CPU, phase by phase.

    python tools/planning/measure_engine_memory.py                  # grpo_tiny_cpu's shape (~30 s)
    python tools/planning/measure_engine_memory.py --shape qwen25_0.5b [key=value ...]

Measured: CPU tensor bytes from the torch profiler's allocation events (mindspeed_rl.planning.measure),
not the process RSS (whose torch/megatron runtime baseline is hundreds of MB). The 0.5B shape needs
about 12 GB of RAM at the defaults below (fp32, seq 256, micro-batch 2) and a few minutes.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SHAPES = {
    "tiny": [],  # grpo_tiny_cpu as shipped: seq 256, micro-batch 16, responses of 64
    # Qwen2.5-0.5B's architecture (tied embeddings, GQA 14/2), a short sequence for a CPU box
    "qwen25_0.5b": ["model.hidden_size=896", "model.num_layers=24", "model.num_attention_heads=14",
                    "model.num_query_groups=2", "model.ffn_hidden_size=4864", "model.vocab_size=151936",
                    "model.max_position_embeddings=32768", "model.rope_theta=1000000.0",
                    "megatron_training.seq_length=256", "megatron_training.max_prompt_length=128",
                    "generate_config.max_model_len=256", "generate_config.sampling_config.max_tokens=128",
                    "actor_config.micro_batch_size=2", "ref_config.micro_batch_size=2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides of grpo_tiny_cpu")
    args = parser.parse_args()

    from mindspeed_rl.config import load_config
    from mindspeed_rl.planning.measure import plan_vs_measured

    cfg = load_config("grpo_tiny_cpu", SHAPES[args.shape] + args.overrides)
    start = time.monotonic()
    rows = plan_vs_measured(cfg, timeout=3600)
    print(f"{args.shape}: {cfg.actor_config.params_dtype}, seq {cfg.megatron_training.seq_length}, "
          f"micro-batch {cfg.actor_config.micro_batch_size}, measured in {time.monotonic() - start:.0f} s")
    for name, (planned, measured) in rows.items():
        print(f"  {name:<30} planned {planned / 1e6:10.1f} MB  measured {measured / 1e6:10.1f} MB  "
              f"({100 * (planned / measured - 1):+.1f}%)")


if __name__ == "__main__":
    main()
