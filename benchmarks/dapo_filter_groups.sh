#!/usr/bin/env bash
# DAPO dynamic sampling on the tiny CPU demo: filter_groups_enable=true vs false, same iterations,
# seeds interleaved (on, off, on, off, ...) so that load on a shared machine hits both sides alike.
# Needs `python3 tools/demo/prepare_tiny_cpu.py` first. Summarise with
# `python3 benchmarks/dapo_summary.py work_dirs/bench/filter_*`.
#
#   bash benchmarks/dapo_filter_groups.sh [iters=12] [seeds="1 2 3"] [global_batch_size=16]
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-12}
SEEDS=${2:-"1 2 3"}
GBS=${3:-16}
export TOKENIZERS_PARALLELISM=false
for seed in $SEEDS; do
  for filter in true false; do
    out=work_dirs/bench/filter_${filter}_s${seed}
    rm -rf "$out"
    timeout 1800 python3 cli/train_grpo.py --config-name grpo_tiny_cpu \
      megatron_training.seed=$seed megatron_training.train_iters=$ITERS megatron_training.save= \
      megatron_training.global_batch_size=$GBS actor_config.mini_batch_size=$GBS \
      megatron_training.log_dir=$out rl_config.test_freq=4 rl_config.save_samples_interval=0 \
      rl_config.filter_groups_enable=$filter rl_config.filter_groups_metric=acc rl_config.max_num_gen_batches=3 \
      > "$out.log" 2>&1 || echo "run $out failed (see $out.log)"
  done
done
