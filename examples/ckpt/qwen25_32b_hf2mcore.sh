#!/usr/bin/env bash
# Qwen2.5-32B: Hugging Face -> Megatron. Actor TP8 PP2 (64 layers, 32 per stage); the colocated reference
# (grpo_qwen25_32b default) loads the actor's checkpoint; TP8 PP1 is for a reference on devices of its own.
# 64 GB of bf16; the converter streams (peak memory ~ a few hundred MB plus one row-parallel tensor).
# Usage: HF_DIR=/models/Qwen2.5-32B bash examples/ckpt/qwen25_32b_hf2mcore.sh
#        uneven stages: NUM_LAYER_LIST=30,34 bash examples/ckpt/qwen25_32b_hf2mcore.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HF_DIR=${HF_DIR:-./model_from_hf/Qwen2.5-32B}
ACTOR_DIR=${ACTOR_DIR:-./model_weights/qwen25_32b_tp8pp2}
REF_DIR=${REF_DIR:-./model_weights/qwen25_32b_tp8pp1}
python tools/convert/convert_ckpt.py hf2mcore --load-dir "$HF_DIR" --save-dir "$ACTOR_DIR" \
    --tp 8 --pp 2 ${NUM_LAYER_LIST:+--num-layer-list "$NUM_LAYER_LIST"} --params-dtype bf16 "$@"
python tools/convert/convert_ckpt.py hf2mcore --load-dir "$HF_DIR" --save-dir "$REF_DIR" \
    --tp 8 --pp 1 --params-dtype bf16 "$@"
