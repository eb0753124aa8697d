#!/usr/bin/env bash
# Issue-12 measurement queue: the 60-iteration CPU demo on both rollout backends, seeds
# interleaved (vLLM s1, HF s1, vLLM s2, ...), one run at a time. The first run starts from a
# removed work_dirs/tiny_cpu and is timed end to end through the example script, preparation
# included (the "finishes within 15 minutes" check); the others reuse the prepared model.
# Each run writes its own log dir and checkpoints under work_dirs/bench_backends/<backend>_s<seed>.
# On a box shared with other jobs, run it ahead of them: Ray runs its workers at nice 15 by
# default, so  RAY_worker_niceness=-10 nice -n -10 bash benchmarks/demo_backends_queue.sh
#
#   bash benchmarks/demo_backends_queue.sh [seeds="1 2 3"] [backends="vllm hf"]
#   python3 benchmarks/demo_backends_summary.py
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-1 2 3}
BACKENDS=${2:-vllm hf}
OUT=work_dirs/bench_backends
mkdir -p "$OUT"
export TOKENIZERS_PARALLELISM=false
first=1
for seed in $SEEDS; do
  for backend in $BACKENDS; do
    run="$OUT/${backend}_s$seed"
    rm -rf "$run"; mkdir -p "$run"
    args=(generate_config.backend="$backend" megatron_training.seed="$seed"
          megatron_training.save="$run/ckpt" megatron_training.log_dir="$run")
    start=$(date +%s)
    if [[ $first == 1 && -z "${KEEP_PREPARED:-}" ]]; then
      rm -rf work_dirs/tiny_cpu
      bash examples/grpo/grpo_tiny_cpu.sh "${args[@]}" > "$run/console.log" 2>&1
    else
      python3 tools/demo/prepare_tiny_cpu.py > "$run/prepare.log" 2>&1
      python3 cli/train_grpo.py --config-name grpo_tiny_cpu "${args[@]}" > "$run/console.log" 2>&1
    fi
    rc=$?
    echo "{\"backend\": \"$backend\", \"seed\": $seed, \"wall_s\": $(( $(date +%s) - start )), \"rc\": $rc, \"with_preparation\": $([[ $first == 1 && -z "${KEEP_PREPARED:-}" ]] && echo true || echo false)}" > "$run/wall.json"
    echo "$(date +%T) $backend seed $seed rc=$rc $(cat "$run/wall.json")"
    first=0
  done
done
