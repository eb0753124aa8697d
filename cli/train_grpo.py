#!/usr/bin/env python3
"""GRPO training (R1-Zero style): ``python cli/train_grpo.py --config-name grpo_qwen25_32b [key=value ...]``."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mindspeed_rl.config.schema import GRPOConfig  # noqa: E402
from mindspeed_rl.config.structured import field_docs  # noqa: E402
from mindspeed_rl.config.cli import config_arg_parser, run_cli  # noqa: E402


def _epilog() -> str:
    lines = ["config keys (section.key: default  doc):"]
    for key, default, doc in field_docs(GRPOConfig):
        lines.append(f"  {key}: {default!r}  {doc}")
    return "\n".join(lines)


def main() -> int:
    parser = config_arg_parser(
        "train_grpo.py",
        "Train a policy with GRPO from rule-based rewards on megatron-core + vLLM/HF rollout + Ray.",
        default_config="grpo_tiny_cpu",
        epilog=_epilog(),
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved, validated config and exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the per-rank memory plan phase by phase and the placement, then exit; exit 3 "
                             "when a phase does not fit rl_config.device_memory_gb (no devices, Ray or model files needed)")
    args = parser.parse_args()

    from mindspeed_rl.config import load_config
    from mindspeed_rl.utils.quiet import quiet_third_party_warnings

    quiet_third_party_warnings()

    cfg = load_config(args.config_name, args.overrides, args.config_dir)
    if args.print_config:
        import dataclasses

        import yaml

        print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        return 0

    if args.dry_run:
        from mindspeed_rl.planning import plan_memory

        plan = plan_memory(cfg)
        print(plan.render())
        return 3 if plan.refusals() else 0

    import importlib.util

    from mindspeed_rl.trainer.preflight import run_preflight
    from mindspeed_rl.utils.imports import require

    backends = (("megatron.core", "the actor and reference training engines"), ("ray", "placing and driving the workers"))
    for module, purpose in backends:  # a missing install first, found without importing it (seconds)
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            require(module, purpose=purpose)
    run_preflight(cfg)  # tokenizer/model/dataset, outputs and resume: refused in seconds, before heavy imports
    for module, purpose in backends:
        require(module, purpose=purpose)
    from mindspeed_rl.trainer import run_grpo

    return run_grpo(cfg)


if __name__ == "__main__":
    run_cli(main)
