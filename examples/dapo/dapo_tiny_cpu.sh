#!/usr/bin/env bash
# DAPO on the tiny CPU demo (same model, data and run as examples/grpo/grpo_tiny_cpu.sh) with
# DAPO's recipe switched on: clip-higher 0.28, token-mean loss, no KL, dynamic sampling on the
# accuracy reward (at most 3 generation batches per step) and overlong shaping (16-token buffer
# before the 64-token limit).
#
#   bash examples/dapo/dapo_tiny_cpu.sh [key=value overrides for train_grpo.py ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export TOKENIZERS_PARALLELISM=false
python3 tools/demo/prepare_tiny_cpu.py
python3 cli/train_grpo.py --config-name grpo_tiny_cpu \
  rl_config.clip_ratio_low=0.2 rl_config.clip_ratio_high=0.28 rl_config.loss_agg_mode=token-mean \
  rl_config.kl_coef=0.0 rl_config.filter_groups_enable=true rl_config.filter_groups_metric=acc \
  rl_config.max_num_gen_batches=3 rl_config.overlong_buffer_enable=true rl_config.overlong_buffer_len=16 \
  rl_config.overlong_penalty_factor=1.0 megatron_training.log_dir=./work_dirs/tiny_cpu/runs_dapo \
  megatron_training.save=./work_dirs/tiny_cpu/ckpt_dapo "$@"
