#!/usr/bin/env bash
# Distil the tiny CPU demo model from its own filtered generations, on 2 CPU cores:
# prepare the demo (tools/demo/prepare_tiny_cpu.py), sample 8 responses per training problem from the
# warm-started model, keep the correct and formatted ones (cli/generate.py), SFT on them on the Megatron
# engine (cli/train_sft.py --config-name sft_tiny_cpu), export to HF.
#
#   bash examples/sft/sft_tiny_cpu.sh [key=value overrides for train_sft.py ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export TOKENIZERS_PARALLELISM=false
WORK=${WORK:-work_dirs/r1_pipeline}
PROBLEMS=${PROBLEMS:-512}
mkdir -p "$WORK"
python3 tools/demo/prepare_tiny_cpu.py
resume=(); [ -e "$WORK/generated.jsonl" ] && resume=(--resume)
python3 cli/generate.py --model work_dirs/tiny_cpu/hf_sft --data work_dirs/tiny_cpu/data/train.jsonl \
  --max-problems "$PROBLEMS" --n 8 --temperature 1.0 --max-tokens 64 --template qwen_r1 --batch-size 64 \
  --functions acc,format --require acc,format --num-workers 1 --seed 1 --output "$WORK/generated.jsonl" "${resume[@]}"
python3 cli/train_sft.py --config-name sft_tiny_cpu "data.train_path=$WORK/generated.jsonl" \
  "save=$WORK/sft_ckpt" "export_hf_dir=$WORK/hf_sft" "$@"
