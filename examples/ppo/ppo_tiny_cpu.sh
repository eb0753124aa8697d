#!/usr/bin/env bash
# PPO with a critic (Open-Reasoner-Zero style: GAE gamma = lam = 1, no KL) on the CPU demo: the same
# tiny model, data and warm start as examples/grpo/grpo_tiny_cpu.sh (prepared once, reused), then
# cli/train_grpo.py --config-name ppo_tiny_cpu: Ray, the Megatron actor + colocated reference, a
# Megatron critic on its own device, the HF rollout engine and the math scorer.
#
#   bash examples/ppo/ppo_tiny_cpu.sh [key=value overrides for train_grpo.py ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export TOKENIZERS_PARALLELISM=false
python3 tools/demo/prepare_tiny_cpu.py
python3 cli/train_grpo.py --config-name ppo_tiny_cpu "$@"
