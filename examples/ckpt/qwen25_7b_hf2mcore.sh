#!/usr/bin/env bash
# Qwen2.5-7B: Hugging Face -> Megatron for the actor/reference (TP4 PP1; 28 heads / 4 KV heads, so TP <= 4).
# Usage: HF_DIR=/models/Qwen2.5-7B MG_DIR=/ckpt/qwen25_7b_tp4pp1 bash examples/ckpt/qwen25_7b_hf2mcore.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HF_DIR=${HF_DIR:-./model_from_hf/Qwen2.5-7B}
MG_DIR=${MG_DIR:-./model_weights/qwen25_7b_tp${TP:-4}pp${PP:-1}}
python tools/convert/convert_ckpt.py hf2mcore \
    --load-dir "$HF_DIR" --save-dir "$MG_DIR" \
    --tp "${TP:-4}" --pp "${PP:-1}" ${NUM_LAYER_LIST:+--num-layer-list "$NUM_LAYER_LIST"} \
    --params-dtype bf16 "$@"
