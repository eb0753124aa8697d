#!/usr/bin/env bash
# Qwen2.5-32B: trained Megatron actor (e.g. TP8 PP2) -> Hugging Face sharded safetensors.
# Usage: MG_DIR=/ckpt/actor SAVE_DIR=/models/Qwen2.5-32B-grpo bash examples/ckpt/qwen25_32b_mcore2hf.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MG_DIR=${MG_DIR:-./ckpt/qwen25_32b_actor}
SAVE_DIR=${SAVE_DIR:-./model_to_hf/Qwen2.5-32B-grpo}
python tools/convert/convert_ckpt.py mcore2hf \
    --load-dir "$MG_DIR" --save-dir "$SAVE_DIR" \
    ${HF_CONFIG_DIR:+--hf-config-dir "$HF_CONFIG_DIR"} --dtype bf16 --max-shard-size 5GB "$@"
