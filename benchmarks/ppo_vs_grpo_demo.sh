#!/usr/bin/env bash
# PPO with a critic (ppo_tiny_cpu) against GRPO (grpo_tiny_cpu) on the CPU demo, seeds interleaved
# (GRPO s1, PPO s1, GRPO s2, ...), one run at a time on the same prepared model
# (tools/demo/prepare_tiny_cpu.py once). Each run writes work_dirs/bench_ppo/<algo>_s<seed>/
# (metrics.jsonl, console.log, wall.json); then python3 benchmarks/ppo_vs_grpo_summary.py.
#
#   bash benchmarks/ppo_vs_grpo_demo.sh [seeds="1 2 3"] [train_iters=30] [backend=hf]
# Ray runs its workers at nice 15: on a box shared with jobs at nice 0 set RAY_worker_niceness=0.
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-1 2 3}
ITERS=${2:-30}
BACKEND=${3:-hf}
ALGOS=${ALGOS:-grpo ppo}  # the order within a seed
OUT=work_dirs/bench_ppo
mkdir -p "$OUT"
export TOKENIZERS_PARALLELISM=false
python3 tools/demo/prepare_tiny_cpu.py > "$OUT/prepare.log" 2>&1 || { echo "preparation failed: $OUT/prepare.log"; exit 1; }
for seed in $SEEDS; do
  for algo in $ALGOS; do
    run="$OUT/${algo}_s$seed"
    rm -rf "$run"; mkdir -p "$run"
    start=$(date +%s)
    python3 cli/train_grpo.py --config-name "${algo}_tiny_cpu" generate_config.backend="$BACKEND" \
      megatron_training.seed="$seed" megatron_training.train_iters="$ITERS" megatron_training.save="$run/ckpt" \
      megatron_training.save_interval=0 megatron_training.log_dir="$run" > "$run/console.log" 2>&1
    rc=$?
    echo "{\"algo\": \"$algo\", \"seed\": $seed, \"wall_s\": $(( $(date +%s) - start )), \"rc\": $rc}" > "$run/wall.json"
    echo "$(date +%T) $(cat "$run/wall.json")"
  done
done
