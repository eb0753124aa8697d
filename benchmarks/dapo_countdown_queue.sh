#!/usr/bin/env bash
# The issue-17 benchmark queue, one run at a time (a shared 2-core box): the DAPO dynamic-sampling
# A/B on the tiny CPU demo (filter_groups_enable true vs false, same iterations, seeds
# interleaved) and the countdown demo on 3 seeds. A run whose Ray start times out is retried once.
# Prepare first: python3 tools/demo/prepare_tiny_cpu.py; python3 tools/demo/prepare_tiny_cpu.py --task countdown
#
#   bash benchmarks/dapo_countdown_queue.sh [filter_iters=8] [countdown_iters=10]
# TEST_FREQ (default 2): held-out validation every so many filter-run iterations (pass@1 points to
# interpolate by wall time).
set -uo pipefail
cd "$(dirname "$0")/.."
FITERS=${1:-8}
CITERS=${2:-10}
TEST_FREQ=${TEST_FREQ:-2}
export TOKENIZERS_PARALLELISM=false
# Ray starts its workers at niceness 15: on a shared box other jobs then starve the rollout (a
# 276 s step, 208 s of it rollout), and the timings measure the neighbours, not the run
export RAY_worker_niceness=${RAY_worker_niceness:-0}
mkdir -p work_dirs/bench

run() {  # run <out dir> <config> [overrides...]
  local out=$1 config=$2; shift 2
  for attempt in 1 2; do
    rm -rf "$out"
    if timeout 3600 python3 cli/train_grpo.py --config-name "$config" megatron_training.save= \
        megatron_training.log_dir="$out" rl_config.save_samples_interval=0 "$@" > "$out.log" 2>&1; then
      echo "$(date +%T) done $out"; return 0
    fi
    echo "$(date +%T) failed $out (attempt $attempt, see $out.log)"
  done
}

filter() {  # filter <true|false> <seed>
  run "work_dirs/bench/filter_$1_s$2" grpo_tiny_cpu megatron_training.seed="$2" megatron_training.train_iters="$FITERS" \
    megatron_training.global_batch_size=16 actor_config.mini_batch_size=16 rl_config.test_freq="$TEST_FREQ" \
    rl_config.filter_groups_enable="$1" rl_config.filter_groups_metric=acc rl_config.max_num_gen_batches=3
}

countdown() {  # countdown <seed>
  run "work_dirs/bench/countdown_s$1" grpo_countdown_tiny_cpu megatron_training.seed="$1" \
    megatron_training.train_iters="$CITERS"  # the demo's own settings: 8 prompts x 8, dynamic sampling
}

# PARTS=filter or PARTS=countdown runs one stream only (two streams can run side by side)
for seed in ${SEEDS:-1 2 3}; do
  if [[ "${PARTS:-filter countdown}" == *filter* ]]; then
    [[ -f work_dirs/bench/filter_true_s$seed/metrics.jsonl && -n "${SKIP_DONE:-}" ]] || filter true "$seed"
    [[ -f work_dirs/bench/filter_false_s$seed/metrics.jsonl && -n "${SKIP_DONE:-}" ]] || filter false "$seed"
  fi
  if [[ "${PARTS:-filter countdown}" == *countdown* ]]; then countdown "$seed"; fi
done
