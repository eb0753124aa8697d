#!/usr/bin/env bash
# The Countdown (Mini-R1) CPU demo, end to end on one machine: a tiny Qwen2-architecture model and
# tokenizer, solvable Countdown problems (2-3 numbers in 1..9, targets 1..50; a solver guarantees
# a solution) preprocessed with Mini-R1's prompts, converted, warm-started with SFT on the solver's
# solutions (2,000 steps, ~5 min), then trained with GRPO on the countdown reward (60 steps, ~6 min).
#
#   bash examples/grpo/grpo_countdown_tiny_cpu.sh [key=value overrides for train_grpo.py ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export TOKENIZERS_PARALLELISM=false
python3 tools/demo/prepare_tiny_cpu.py --task countdown
python3 cli/train_grpo.py --config-name grpo_countdown_tiny_cpu "$@"
