#!/usr/bin/env bash
# The CPU demo, end to end on one machine: build a tiny Qwen2-architecture model and tokenizer,
# make its data with the R1-Zero template and the preprocessor, convert it with the converter,
# warm-start it briefly with SFT on the Megatron engine, then train it with GRPO through Ray,
# the Megatron actor/reference, the HF rollout engine and the math scorer.
#
#   bash examples/grpo/grpo_tiny_cpu.sh [key=value overrides for train_grpo.py ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export TOKENIZERS_PARALLELISM=false
python3 tools/demo/prepare_tiny_cpu.py
python3 cli/train_grpo.py --config-name grpo_tiny_cpu "$@"
